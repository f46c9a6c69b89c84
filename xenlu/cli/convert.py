"""``xenlu convert``: libxc v2 → v3, and LU upgrade / rollback.

    xenlu convert --to-v3 IN OUT
    xenlu convert --to X.Y [--allow-loss] [--report R.json] [-q] IN OUT
    xenlu convert --dry-run --to X.Y [--allow-loss] [--json|-q] IN

OUT is written atomically (:mod:`xenlu.cli.io`); it may be IN (converted in
place, keeping IN's mode) or ``-`` (standard output). The report is written
only once OUT is: both are staged first, then renamed into place. Options
that do not apply to ``--to-v3`` are usage errors.

``--dry-run`` is the pre-flight an operator runs before a live update: it
runs the conversion in memory (:func:`xenlu.host.compat.convert`'s report) and
prints, per domain, what would be filled (with the §6 rule), what would be
lost, and what is refused; nothing is written. It exits 0 when the
conversion would be performed as asked — lossless, or lossy with
``--allow-loss`` (the losses listed) — and 1 when it would be refused: a
loss without ``--allow-loss``, or a refusal that ``--allow-loss`` does not
lift (LU_P2M ``r_pw``).

>>> import argparse
>>> p = argparse.ArgumentParser(prog="xenlu")
>>> register(p.add_subparsers(dest="command"))
>>> p.parse_args(["convert", "--to", "4.15", "in.lu", "out.lu"]).to
(4, 15)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from typing import IO, Any

from xenlu.cli.io import (
    UsageError,
    epilog,
    guarded,
    out,
    read_input,
    stage,
    stdout_binary,
    version_arg,
)
from xenlu.cli.progress import Counting, Progress, progress
from xenlu.core.epochs import SUPPORTED_RANGE
from xenlu.core.errors import CallerError, ConversionError

__all__ = ["PIPE_LIMIT", "cmd_convert", "dry_run", "dry_run_summary", "register"]

#: The largest IN read from a pipe (convert needs the whole decoded stream:
#: the compat steps and the v2 → v3 rewrite work on it, not section by section).
PIPE_LIMIT = 1 << 30


def _convert_v3(stream: Any) -> Any:
    """v2 → v3 for a libxc stream, or the libxc stream inside libxl / xl."""
    from xenlu.migration.libxc_stream import LibxcStream, convert_v2_to_v3
    from xenlu.migration.libxl import LibxlStream, XlFile
    from xenlu.migration.libxl_records import LibxcContext

    def libxc(s: LibxcStream) -> LibxcStream:
        if s.version != 2:
            raise ConversionError(f"the libxc stream is already version {s.version}")
        return convert_v2_to_v3(s)

    if isinstance(stream, LibxcStream):
        return libxc(stream)
    if isinstance(stream, XlFile):
        return dataclasses.replace(stream, stream=_convert_v3(stream.stream))
    if isinstance(stream, LibxlStream):
        recs = []
        for r in stream.records:
            if isinstance(r.value, LibxcContext):
                r = dataclasses.replace(r, value=LibxcContext(libxc(r.value.stream)))
            recs.append(r)
        return dataclasses.replace(stream, records=recs)
    raise CallerError(
        "an LU stream: --to-v3 converts libxc, libxl and xl streams (--to X.Y converts LU streams)"
    )


def _check_options(args: argparse.Namespace) -> None:
    if args.dry_run:
        if args.to_v3:
            raise UsageError("--dry-run applies to --to X.Y only, not to --to-v3")
        if args.output is not None:
            raise UsageError(f"--dry-run writes nothing: drop OUT ({args.output})")
        if args.report is not None:
            raise UsageError("--dry-run writes nothing: --json prints the report instead")
        if args.quiet and args.json:
            raise UsageError("-q and --json exclude each other")
        return
    if args.json:
        raise UsageError("--json applies to --dry-run (--report R.json writes the report)")
    if args.output is None:
        raise UsageError("OUT is missing (or use --dry-run to write nothing)")
    if args.to_v3:
        extra = [o for o, v in (("--report", args.report), ("--allow-loss", args.allow_loss)) if v]
        if extra:
            verb = "apply" if len(extra) > 1 else "applies"
            raise UsageError(f"{' and '.join(extra)} {verb} to --to X.Y only, not to --to-v3")
    if args.report is not None and args.report == "-":
        raise UsageError("--report needs a file name (standard output carries OUT or the summary)")
    if args.report is not None and args.report in (args.input, args.output):
        raise UsageError("--report must name a file other than IN and OUT")


def _refusal(exc: ConversionError) -> dict[str, Any]:
    return {
        "domid": exc.domid,
        "record": exc.record,
        "field": exc.field,
        "value": exc.value if isinstance(exc.value, (int, str, type(None))) else str(exc.value),
        "step": exc.step,
        "message": " ".join(str(exc).split()),
    }


def dry_run(stream: Any, to: Any, allow_loss: bool) -> dict[str, Any]:
    """What ``convert --to`` would do to ``stream``, as JSON data; nothing is kept.

    ``fills``, ``losses`` and ``refusals`` (a refusal that ``allow_loss``
    does not lift: the first per domain, found by converting the domains one
    at a time once the whole stream is refused) and a ``verdict``:
    ``lossless``, ``lossy`` (performed with ``allow_loss``, refused without)
    or ``refused``; ``performed`` says whether ``convert`` as asked succeeds.
    """
    from xenlu.host.compat import convert
    from xenlu.lu.stream import LUStream

    refusals: list[dict[str, Any]] = []
    try:
        _, report = convert(stream, to=to, allow_loss=True)
        obj = report.to_json()
    except ConversionError:
        # Refused even with allow_loss: find each domain's refusal, and the
        # fills and losses of the domains that do convert.
        obj = {}
        fills: list[Any] = []
        losses: list[Any] = []
        for d in [None, *stream.domains]:
            part = LUStream(stream.global_section, [] if d is None else [d])
            try:
                _, rep = convert(part, to=to, allow_loss=True)
            except ConversionError as exc:
                r = _refusal(exc)
                if d is None or r["domid"] is not None:  # a global refusal is said once
                    refusals.append(r)
                continue
            j = rep.to_json()
            obj = obj or j
            mine = None if d is None else d.domid  # a domain's part: its own entries
            fills += [x for x in j["fills"] if x["domid"] == mine]
            losses += [x for x in j["losses"] if x["domid"] == mine]
        if not obj:
            obj = {"source": stream.xen_version, "target": "{}.{}".format(*to)}
        obj.update(fills=fills, losses=losses)
    verdict = "refused" if refusals else "lossy" if obj["losses"] else "lossless"
    obj.update(
        dry_run=True,
        allow_loss=allow_loss,
        verdict=verdict,
        performed=verdict == "lossless" or (verdict == "lossy" and allow_loss),
        refusals=refusals,
    )
    return obj


def _domains(ids: list[int | None]) -> str:
    """``[0, 1, 2, 3, 7]`` → ``dom0–3, dom7``; None is the global section."""
    doms = sorted({d for d in ids if d is not None})
    parts = ["global"] if None in ids else []
    i = 0
    while i < len(doms):
        j = i
        while j + 1 < len(doms) and doms[j + 1] == doms[j] + 1:
            j += 1
        parts.append(f"dom{doms[i]}" + (f"–{doms[j]}" if j > i else ""))
        i = j + 1
    return ", ".join(parts)


def _groups(items: list[dict[str, Any]], why: str, max_lines: int) -> list[str]:
    """One line per (record, field, reason): how many, in which domains."""
    groups: dict[tuple[str, str, str], list[int | None]] = {}
    for x in items:
        stem = re.sub(r"\[\d+\]", "[*]", x["field"])  # VIRIDIAN_VCPU[3] → VIRIDIAN_VCPU[*]
        groups.setdefault((x["record"], stem, x[why]), []).append(x["domid"])
    lines = []
    for i, ((rec, fld, reason), ds) in enumerate(groups.items()):
        if i == max_lines:
            lines.append(f"  … {len(groups) - max_lines} more (see --json)")
            break
        many = f" x{len(ds)}" if len(ds) > len(set(ds)) else ""
        lines.append(f"  {rec}.{fld}{many} in {_domains(ds)}: {reason}")
    return lines


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def dry_run_summary(obj: dict[str, Any], max_lines: int = 12) -> str:
    """The short human form of :func:`dry_run`'s result: refusals, losses and
    fills grouped by field with the domains they touch, then the verdict."""
    head = f"dry run: {obj.get('direction', 'convert')} {obj['source']} -> {obj['target']}"
    if obj.get("steps"):
        head += f" via {', '.join(obj['steps'])}"
    lines = [head + "; nothing written"]
    for x in obj["refusals"]:
        lines.append(f"REFUSED in {_domains([x['domid']])}: {x['message']}")
    n_loss, n_fill = len(obj["losses"]), len(obj["fills"])
    if n_loss:
        lines.append(f"{n_loss} loss{'es' * (n_loss != 1)}:")
        lines += _groups(obj["losses"], "what", max_lines)
    if n_fill:
        lines.append(f"{_plural(n_fill, 'fill')} (§6 rules):")
        lines += _groups(obj["fills"], "rule", max_lines)
    n_dom = len({x["domid"] for x in obj["losses"]})
    if obj["verdict"] == "refused":
        lines.append("verdict: refused, even with --allow-loss")
    elif obj["verdict"] == "lossy" and obj["allow_loss"]:
        lines.append(f"verdict: lossy: --allow-loss performs it, losing {_plural(n_loss, 'value')}")
    elif obj["verdict"] == "lossy":
        lines.append(
            f"verdict: refused: {_plural(n_loss, 'value')} in {_plural(n_dom, 'domain')} "
            "would be lost (--allow-loss performs it and reports them)"
        )
    else:
        lines.append("verdict: lossless")
    return "\n".join(lines)


def cmd_convert(args: argparse.Namespace) -> int:
    """``convert --to-v3 IN OUT`` or ``convert --to X.Y [...] IN OUT``; raises on failure."""
    from xenlu.api import decode

    _check_options(args)
    data = read_input(args.input, PIPE_LIMIT)
    report: Any = None
    with progress("convert", len(data), quiet=args.quiet) as bar:
        bar.phase("decode")
        if args.to_v3:
            new = _convert_v3(decode(data, "auto"))
        else:
            from xenlu.host.compat import convert

            stream = decode(data, "lu")
            bar.phase("convert")
            if args.dry_run:
                obj = dry_run(stream, args.to, args.allow_loss)
                if args.json:
                    out(json.dumps({"file": args.input, **obj}, indent=2, ensure_ascii=False))
                elif not args.quiet:
                    out(dry_run_summary(obj))
                return 0 if obj["performed"] else 1
            try:
                new, report = convert(stream, to=args.to, allow_loss=args.allow_loss)
            except ConversionError as exc:
                line = " ".join(str(exc).split())
                hint = (
                    ""
                    if "even with allow_loss" in line
                    else " (--allow-loss performs it and reports)"
                )
                raise ConversionError(line + hint) from None
        bar.phase("write", total=len(data))
        _write(args, new, report, bar)
    if report is not None and not args.quiet:
        if args.output == "-":
            print(report.summary(), file=sys.stderr)
        else:
            out(report.summary())
    return 0


def _write(args: argparse.Namespace, new: Any, report: Any, bar: Progress) -> None:
    """OUT (atomically, or stdout) and then the report, under the contract."""
    from xenlu.api import encode_to

    def write_out(f: IO[bytes]) -> None:
        encode_to(new, Counting(f, bar) if bar.shown else f)

    def write_report(f: IO[bytes]) -> None:
        text = json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
        f.write(text.encode("utf-8"))

    if args.output == "-":
        sink = stdout_binary()
        write_out(sink)
        sink.flush()
        if report is not None and args.report:
            stage(args.report, write_report).commit()
    else:
        staged = stage(args.output, write_out)
        try:
            rep = stage(args.report, write_report) if report is not None and args.report else None
        except BaseException:
            staged.discard()
            raise
        staged.commit()
        if rep is not None:
            rep.commit()


def register(subparsers: Any) -> None:
    """Add the ``convert`` command to the ``xenlu`` parser."""
    p = subparsers.add_parser(
        "convert",
        help="libxc v2 → v3, or LU upgrade / rollback",
        description="Convert a stream and write it atomically to OUT (OUT may be IN, or -). "
        "The conversion works on the whole decoded stream: IN read from a pipe (-, a FIFO, "
        f"a socket) is held in memory, and refused above {PIPE_LIMIT >> 30} GiB (a file is "
        "mapped).",
        epilog=epilog(
            "xenlu convert --to-v3 guest-v2.xc guest-v3.xc",
            "xenlu convert --to 4.15 --allow-loss --report r.json host.lu host-4.15.lu",
            "xenlu convert --dry-run --to 4.13 host.lu",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--to-v3", action="store_true", help="libxc stream v2 → v3 (also inside libxl and xl)"
    )
    g.add_argument(
        "--to",
        type=version_arg,
        metavar="X.Y",
        help=f"LU stream: upgrade or roll back to Xen X.Y ({SUPPORTED_RANGE})",
    )
    p.add_argument(
        "--allow-loss",
        action="store_true",
        help="--to only: perform a lossy rollback and list every loss",
    )
    p.add_argument(
        "--report",
        metavar="R.json",
        help="--to only: write the conversion report (fills, losses) as JSON, after OUT",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="--to only: print what would be filled, lost and refused, per domain; write "
        "nothing; exit 0 if it would be performed, 1 if refused (OUT is not given)",
    )
    p.add_argument(
        "--json", action="store_true", help="--dry-run only: print the pre-flight as one object"
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no summary on stdout, no progress bar"
    )
    p.add_argument("input", metavar="IN", help="input stream, - for stdin")
    p.add_argument(
        "output",
        metavar="OUT",
        nargs="?",
        help="output file (written atomically), - for stdout; not with --dry-run",
    )
    p.set_defaults(func=guarded("convert", cmd_convert))
