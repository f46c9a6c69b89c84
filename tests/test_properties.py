"""Property tests driven by xenlu.testing.strategies (issue 6).

* every record of every epoch and format round-trips: decode(encode(x)) == x
  and encode(decode(b)) == b (LU records per epoch, libxc records in LU
  sections and in plain libxc streams, libxl records);
* whole LU hosts, libxc v2/v3 streams, libxl streams and xl files round-trip;
* whole-buffer LU decode equals section-by-section decode;
* generated hosts validate clean (when xenlu.host.validation exists);
* upgrade-then-rollback is the identity (when xenlu.host.compat exists);
* every corruption is caught as declared;
* any mutated byte string makes every decoder succeed or raise only
  XenLUError, quickly (no hang), and a length field claiming ~4 GiB never
  allocates it;
* registry completeness: every declared record of every epoch has a
  strategy, a schema entry and a golden vector.

Budgets: the ``dev`` profile is quick; under ``ci`` this file stays within
about 90 s on 2 cores (the per-record tests run a quarter of the profile's
examples each, there are ~230 of them).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import signal
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from xenlu import api
from xenlu.core.epochs import EPOCHS, fmt_epoch
from xenlu.core.errors import XenLUError
from xenlu.core.framing import frames
from xenlu.core.layout import Rsvd
from xenlu.core.registry import LIBXC, LIBXL, LU, Ctx, record_name
from xenlu.core.values import values_equal
from xenlu.lu.stream import decode_domain_section, decode_lu, encode_lu, scan_lu
from xenlu.migration.libxc_stream import decode_libxc
from xenlu.migration.libxl import decode_libxl, decode_xl
from xenlu.testing import strategies as S
from xenlu.testing.hostgen import make_host

ROOT = Path(__file__).resolve().parent.parent
HAVE_VALIDATE = importlib.util.find_spec("xenlu.host.validation") is not None
HAVE_COMPAT = importlib.util.find_spec("xenlu.host.compat") is not None


def scaled(fraction: float, minimum: int = 5) -> settings:
    """The loaded profile with ``fraction`` of its examples (at least ``minimum``)."""
    return settings(max_examples=max(minimum, int(settings.default.max_examples * fraction)))


# --- every record of every epoch and format -------------------------------------

REGISTRIES = {"lu": LU, "libxc": LIBXC, "libxl": LIBXL}
RECORD_CASES = [(e, fam, name) for e in [*EPOCHS, None] for fam, name in S.record_names(e)]


def _body(spec: Any, value: Any) -> bytes:
    return b"".join(bytes(p) for p in spec.encode(value))


@pytest.mark.parametrize(
    ("epoch", "family", "name"),
    RECORD_CASES,
    ids=[f"{fmt_epoch(e) if e else 'stream'}-{f}-{n}" for e, f, n in RECORD_CASES],
)
def test_record_roundtrip(epoch: tuple[int, int] | None, family: str, name: str) -> None:
    spec = REGISTRIES[family].by_name(name)

    @scaled(0.25)
    @given(S.records(name, epoch, family=family))
    def prop(value: Any) -> None:
        body = _body(spec, value)
        back = spec.decode(memoryview(body), Ctx(0, spec.type, 8, len(body), epoch))
        assert values_equal(back, value) or back == value
        assert _body(spec, back) == body

    prop()


# --- whole streams ------------------------------------------------------------


@pytest.mark.parametrize("epoch", EPOCHS, ids=fmt_epoch)
def test_lu_stream_roundtrip(epoch: tuple[int, int]) -> None:
    @scaled(0.2)
    @given(S.hosts(epoch, max_domains=4), st.sampled_from([1 << 27, 64, 4096]))
    def prop(host: Any, limit: int) -> None:
        data = encode_lu(host, max_record_bytes=limit)
        back = decode_lu(data)
        assert back == host
        assert encode_lu(back) == data  # decoded record splits are kept byte-exactly
        assert back.sections_ok

    prop()


@pytest.mark.parametrize("version", [2, 3])
@given(data=st.data())
def test_libxc_stream_roundtrip(version: int, data: st.DataObject) -> None:
    model = data.draw(S.libxc_models(version))
    raw = api.encode(model)
    back = api.decode(raw)
    assert back == model
    assert api.encode(back) == raw


@given(S.libxl_streams(xl=None, as_bytes=False))
def test_libxl_and_xl_roundtrip(model: Any) -> None:
    raw = api.encode(model)
    back = api.decode(raw)
    assert back == model
    assert api.encode(back) == raw


@given(S.streams(max_domains=4))
def test_section_by_section_equals_whole(data: bytes) -> None:
    whole = decode_lu(data)
    infos = scan_lu(data)
    assert len(infos) == 1 + len(whole.domains)
    assert infos[0].start == 0
    for info, dom in zip(infos[1:], whole.domains, strict=True):
        part = decode_domain_section(data, info.start, whole.version, record_index=info.first_index)
        assert part == dom
        assert part.domid == info.domid == dom.domid
        assert part.checksum_ok


@pytest.mark.skipif(not HAVE_VALIDATE, reason="xenlu.host.validation is not there yet")
@given(S.hosts(max_domains=5))
def test_hosts_validate_clean(host: Any) -> None:
    from xenlu.host.validation import validate

    report = validate(host)
    assert not list(report.findings), [str(f) for f in report.findings]


@pytest.mark.skipif(not HAVE_COMPAT, reason="xenlu.host.compat is not there yet")
@scaled(0.5)
@given(S.hosts(max_domains=3, convertible=True), st.data())
def test_upgrade_then_rollback_is_identity(host: Any, data: st.DataObject) -> None:
    from xenlu.host.compat import convert

    newer = [v for v in S.supported_versions() if v > host.version]
    if not newer:
        return
    to = data.draw(st.sampled_from(newer))
    up, _ = convert(host, to)
    assert decode_lu(encode_lu(up)) == up
    down, report = convert(up, host.version)
    assert report.lossless
    assert down == host
    assert encode_lu(down) == encode_lu(host)


# --- corruptions --------------------------------------------------------------

STRUCTURAL = [k for k in S.FAULT_KINDS if not S.FAULT_KINDS[k].startswith("*")]
SEMANTIC = [k for k in S.FAULT_KINDS if S.FAULT_KINDS[k].startswith("*")]


@given(S.streams(max_domains=3).flatmap(lambda b: S.corruptions(b, kinds=STRUCTURAL)))
def test_lu_structural_corruptions_are_caught(c: S.Corruption) -> None:
    assert c.error is not None and c.format == "lu"
    c.check()


@given(S.libxc_streams().flatmap(lambda b: S.corruptions(b, kinds=STRUCTURAL)))
def test_libxc_structural_corruptions_are_caught(c: S.Corruption) -> None:
    assert c.error is not None and c.format == "libxc"
    c.check()


@pytest.mark.parametrize("kind", STRUCTURAL + SEMANTIC)
def test_every_fault_kind_applies_to_a_host(kind: str) -> None:
    """Each kind has a site in an ordinary host, and its declared verdict holds."""
    if kind in SEMANTIC and not HAVE_VALIDATE:
        pytest.skip("xenlu.host.validation is not there yet")
    host = make_host((4, 13), n_hvm=2, mem_mib=1, dom0_mem_mib=1)

    @scaled(0.25)
    @given(S.corruptions(host, kinds=[kind]))
    def prop(c: S.Corruption) -> None:
        assert c.kind == kind
        c.check()

    prop()


@pytest.mark.skipif(not HAVE_VALIDATE, reason="xenlu.host.validation is not there yet")
@scaled(0.5)
@given(S.streams(max_domains=4).flatmap(lambda b: S.corruptions(b, kinds=SEMANTIC)))
def test_semantic_corruptions_are_found(c: S.Corruption) -> None:
    assert c.finding is not None
    c.check()


# --- robustness: mutated inputs -------------------------------------------------


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"decoder ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _seeds() -> list[bytes]:
    out = [
        encode_lu(make_host(e, n_hvm=1, mem_mib=1, dom0_mem_mib=1, vcpus=1)) for e in EPOCHS[::3]
    ]
    out.append(
        encode_lu(make_host((4, 21), n_hvm=2, mem_mib=1, dom0_mem_mib=1, fifo_every=1, seed=3))
    )
    try:
        from vectors.libxc_vectors import VECTORS

        out += [v.data for v in VECTORS if v.error is None][:12]
    except ImportError:  # pragma: no cover - the vectors engineer's corpus
        pass
    return out


SEEDS = _seeds()
INTERESTING = [
    0,
    1,
    7,
    8,
    0xFF,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFF8,
    0xFFFFFFFF,
    1 << 27,
    (1 << 27) + 1,
]


@st.composite
def mutated(draw: Any) -> bytes:
    buf = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 5))
        n = len(buf)
        at = draw(st.integers(0, max(0, n - 1)))
        if op == 0 and n:
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif op == 1 and n >= 4:
            at = min(at & ~3, n - 4)
            struct.pack_into("<I", buf, at, draw(st.sampled_from(INTERESTING)))
        elif op == 2:
            buf[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == 3 and n:
            del buf[at : at + draw(st.integers(1, 64))]
        elif op == 4:
            del buf[at:]
        elif op == 5 and n:
            buf[at : at + 8] = draw(st.binary(min_size=8, max_size=8))
    return bytes(buf)


def _decoders() -> list[tuple[str, Callable[[bytes], Any]]]:
    out: list[tuple[str, Callable[[bytes], Any]]] = [
        ("decode_lu", decode_lu),
        ("decode_lu(lenient)", lambda b: decode_lu(b, strict=False, verify_checksums=False)),
        ("decode_lu(memory)", lambda b: decode_lu(b, memory=True)),
        ("scan_lu", scan_lu),
        ("decode_libxc", decode_libxc),
        ("decode_libxl", decode_libxl),
        ("decode_xl", decode_xl),
        ("api.decode", api.decode),
        ("api.decode(lenient)", lambda b: api.decode(b, strict=False)),
    ]
    return out


@settings(max_examples=max(50, settings.default.max_examples * 3))
@given(mutated())
def test_mutated_input_raises_only_xenlu_errors(data: bytes) -> None:
    for name, fn in _decoders():
        with time_limit(5.0):
            try:
                fn(data)
            except XenLUError:
                pass
            except Hang:
                raise
            except Exception as exc:  # pragma: no cover - the failure being tested for
                raise AssertionError(f"{name} raised {type(exc).__name__}: {exc}") from exc
    # Section by section, and validation of whatever decodes.
    try:
        with time_limit(5.0):
            infos = scan_lu(data)
            stream = decode_lu(data, verify_checksums=False)
    except XenLUError:
        return
    for info in infos[1:]:
        with contextlib.suppress(XenLUError), time_limit(5.0):
            decode_domain_section(data, info.start, stream.version)
    if HAVE_VALIDATE:
        from xenlu.host.validation import validate

        with contextlib.suppress(XenLUError), time_limit(10.0):
            validate(stream)


def _lu_with_record(rtype: int, body: bytes, length: int | None = None) -> bytes:
    """LU_VERSION 4.15 then one record (a claimed length may exceed the body)."""
    ver = struct.pack("<IIII", 0x40000000, 8, 4, 15)
    ln = len(body) if length is None else length
    return ver + struct.pack("<II", rtype, ln) + body + bytes(-len(body) & 7)


def _libxc_with_record(rtype: int, body: bytes, length: int | None = None) -> bytes:
    ihdr = struct.pack("!QIIHHI", 0xFFFFFFFFFFFFFFFF, 0x58454E46, 2, 0, 0, 0)
    dhdr = struct.pack("<IHHII", 2, 12, 0, 4, 15)
    ln = len(body) if length is None else length
    return ihdr + dhdr + struct.pack("<II", rtype, ln) + body + bytes(-len(body) & 7)


HUGE = [
    ("lu record length 4 GiB", _lu_with_record(0x40000001, bytes(48), 0xFFFFFFF8)),
    ("lu record length REC_LENGTH_MAX", _lu_with_record(0x40000001, bytes(48), 1 << 27)),
    ("lu bulk count 4 G", _lu_with_record(0x40000012, struct.pack("<II", 0xFFFFFFFF, 0))),
    ("lu ioreq count 4 G", _lu_with_record(0x40000019, struct.pack("<II", 0xFFFFFFFF, 0))),
    (
        "lu grant table frames 4 G",
        _lu_with_record(0x40000015, struct.pack("<B3xIII", 1, 0xFFFFFFFF, 0, 0)),
    ),
    (
        "lu evtchn abi blocks 4 G",
        _lu_with_record(0x40000017, struct.pack("<II", 2, 0xFFFFFFFF) + bytes(8)),
    ),
    ("libxc page data count 4 G", _libxc_with_record(0x01, struct.pack("<II", 0xFFFFFFFF, 0))),
    ("libxc hvm params count 4 G", _libxc_with_record(0x0A, struct.pack("<II", 0xFFFFFFFF, 0))),
    (
        "libxc hvm context entry 4 GiB",
        _libxc_with_record(0x09, struct.pack("<HHI", 1, 0, 0xFFFFFFFF) + bytes(24)),
    ),
    ("libxc record length 4 GiB", _libxc_with_record(0x01, bytes(16), 0xFFFFFFF8)),
    (
        "xl optional data 4 GiB",
        b"Xen saved domain, xl format\n \0 \r" + struct.pack("<IIII", 0x01020304, 2, 0, 0xFFFFFFFF),
    ),
]


@pytest.mark.parametrize(("what", "data"), HUGE, ids=[h[0] for h in HUGE])
def test_huge_length_field_allocates_nothing(what: str, data: bytes) -> None:
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with time_limit(5.0), pytest.raises(XenLUError):
            api.decode(data)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 1.0
    assert peak < 8 << 20, f"{what}: peak {peak} bytes traced"


# --- registry completeness --------------------------------------------------------


def _golden_lu_names() -> dict[str, set[str]]:
    """Epoch "X.Y" → every record name found in a golden LU stream of that epoch."""
    out: dict[str, set[str]] = {fmt_epoch(e): set() for e in EPOCHS}
    blobs = [p.read_bytes() for p in sorted((ROOT / "tests" / "golden").glob("*/*.bin"))]
    try:
        from vectors.lu_vectors import GOLDEN
    except ImportError:  # pragma: no cover
        GOLDEN = []
    blobs += [v.data for v in GOLDEN]
    for data in blobs:
        s = decode_lu(data)  # a golden stream must decode
        buf = memoryview(data)
        names = {
            record_name(t, "lu" if t & 0x40000000 else "libxc")
            for _, _, t, _ in frames(buf, 0, len(buf), 0)
        }
        out[fmt_epoch(s.epoch)] |= {n for n in names if n}
    return out


def _libxc_vector_types() -> set[int]:
    try:
        from vectors.libxc_vectors import VECTORS
    except ImportError:  # pragma: no cover
        return set()
    out: set[int] = set()
    for v in VECTORS:
        if v.error is None and v.format == "libxc":
            out |= {r.type for r in api.decode(v.data, "libxc").records}
    return out


def _draw_one(strategy: Any) -> Any:
    """Draw a few values (generation only: no shrinking, no database)."""
    out: list[Any] = []

    @settings(max_examples=3, database=None, phases=[Phase.generate])
    @given(strategy)
    def draw(value: Any) -> None:
        out.append(value)

    draw()
    return out[0]


def test_registry_completeness() -> None:
    """Every declared record of every epoch: strategy, schema entry, golden vector.

    Adding a record type (or an epoch) without any of the three fails here.
    """
    problems: list[str] = []
    schema_dir = ROOT / "xenlu" / "schemas"
    golden = _golden_lu_names()
    libxc_vec = _libxc_vector_types()
    allowed = LIBXC_IN_LU()
    for e in EPOCHS:
        ep = fmt_epoch(e)
        path = schema_dir / f"lu-{ep}.json"
        schema = json.loads(path.read_text()) if path.exists() else None
        if schema is None:
            problems.append(f"{ep}: no schema file {path.name}")
        declared = [("lu", s.name) for s in LU] + [
            ("libxc", s.name) for s in LIBXC if s.type in allowed
        ]
        for fam, name in declared:
            try:
                _draw_one(S.records(name, e, family=fam))
            except Exception as exc:
                problems.append(f"{ep} {name}: no strategy ({exc})")
            if schema is not None and name not in schema.get("records", {}):
                problems.append(f"{ep} {name}: no entry in {path.name}")
            if fam == "lu" and name not in golden[ep]:
                problems.append(f"{ep} {name}: in no golden LU stream of this epoch")
            in_golden = any(name in g for g in golden.values())
            if fam == "libxc" and not in_golden and LIBXC.by_name(name).type not in libxc_vec:
                problems.append(f"{name}: in no golden LU stream and no valid libxc vector")
    for s in LIBXC:
        if ("libxc", s.name) in S.EXCLUDED:
            continue
        try:
            _draw_one(S.records(s.name, family="libxc"))
        except Exception as exc:
            problems.append(f"libxc {s.name}: no strategy ({exc})")
    for s in LIBXL:
        if ("libxl", s.name) in S.EXCLUDED:
            continue
        try:
            _draw_one(S.records(s.name, family="libxl"))
        except Exception as exc:
            problems.append(f"libxl {s.name}: no strategy ({exc})")
    assert not problems, "\n".join(problems)


def LIBXC_IN_LU() -> set[int]:
    from xenlu.lu.grammar import LIBXC_IN_LU

    return set(LIBXC_IN_LU)


def test_new_declaration_gets_a_strategy_without_code_change() -> None:
    """A record declared only as a packed layout, or a bulk entry layout, is fuzzable at once."""
    from construct import Int16ul, Int32ul, Int64ul

    from xenlu.core.layout import Packed, fld, packed, reserved
    from xenlu.core.registry import RecordSpec, Registry
    from xenlu.lu.records import _bulk, _fixed

    @packed(name="LU_FUTURE")
    class Future(Packed):
        a: int = fld(Int32ul, values={1: "x", 3: ("y", "4.20", None)})
        b: int = fld(Int16ul, bits={0: "p", 5: ("q", "4.21", None)})
        c: ClassVar[Rsvd] = reserved(Int16ul)
        d: int = fld(Int64ul, lo=2, hi=9)

    @packed(name="LU_FUTURE entry")
    class FutureEntry(Packed):
        x: int = fld(Int32ul, hi=100)
        y: int = fld(Int32ul, bits={1: "on"})

    reg = Registry("lu")
    fixed = _fixed(Future)
    reg.add(
        RecordSpec(
            "lu", 0x40000070, "LU_FUTURE", fixed.decode, fixed.encode, Future, layouts=(Future,)
        )
    )
    reg.add(_bulk("LU_FUTURE_BULK", 0x40000071, lambda e: FutureEntry))
    cases = [(spec, e) for spec in reg for e in ((4, 19), (4, 21))]
    for spec, e in cases:
        assert S._derive(spec, e) is not None, spec.name

    @scaled(0.5)
    @given(st.sampled_from(cases).flatmap(lambda c: st.tuples(st.just(c), S._derive(*c))))
    def prop(case: Any) -> None:
        (spec, e), value = case
        body = _body(spec, value)
        back = spec.decode(memoryview(body), Ctx(0, spec.type, 8, len(body), e))
        assert values_equal(back, value) or back == value

    prop()


def _draw_many(strategy: Any, n: int) -> list[Any]:
    out: list[Any] = []

    @settings(max_examples=n, database=None, phases=[Phase.generate], derandomize=True)
    @given(strategy)
    def draw(value: Any) -> None:
        out.append(value)

    draw()
    return out


def test_hosts_cover_the_variety() -> None:
    """PV and HVM, FIFO and two-level, grant v1 and v2, fragmentation, several vCPUs …"""
    seen: set[str] = set()
    for h in _draw_many(S.hosts(max_domains=4), 40):
        for d in h.domains:
            seen.add("hvm" if d.is_hvm else "pv")
            abi = d.evtchn_abi
            if abi is not None:
                seen.add("fifo" if abi.abi == 2 else "2l")
            if d.grant_table is not None:
                seen.add(f"grant_v{d.grant_table.version}")
            if d.info.max_vcpus > 1:
                seen.add("smp")
            if len(d.ownership) > 8:
                seen.add("fragmented")
            if d.domid > len(h.domains):
                seen.add("sparse_domids")
            if d.info.lu_state & 0x10:
                seen.add("shinfo32")
            if any(r.type & 0x80000000 for r in d.records):
                seen.add("optional")
        seen.add(f"epoch_{fmt_epoch(h.epoch)}")
    want = {"pv", "hvm", "fifo", "2l", "grant_v1", "grant_v2", "smp", "fragmented"}
    want |= {"sparse_domids", "shinfo32", "optional"}
    assert want <= seen, sorted(want - seen)
    assert sum(s.startswith("epoch_") for s in seen) >= 5


def test_strategies_docstring_examples() -> None:
    import doctest
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # .example() is meant for interactive use
        result = doctest.testmod(S, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 10


@given(S.wild_hosts(max_domains=3))
def test_wild_hosts_roundtrip_and_validate_without_crashing(stream: Any) -> None:
    """Structurally valid streams with records related at random: decode round-trips,
    and validation reports (findings) but never raises anything but XenLUError."""
    data = encode_lu(stream)
    assert decode_lu(data) == stream
    if HAVE_VALIDATE:
        from xenlu.host.validation import validate

        with contextlib.suppress(XenLUError), time_limit(20.0):
            validate(stream).dumps()
