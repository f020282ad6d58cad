"""``python -m ppzoo.hub list|download|path``: look at the weights table, fill the cache.

    python -m ppzoo.hub list [--markdown]     every entry of the table
    python -m ppzoo.hub download NAME|URL...  download and verify into the cache
    python -m ppzoo.hub path                  where the cache and the table are
"""
import argparse
import sys

from ..core.errors import PPZooError


ZOO_BEGIN = "<!-- model-zoo: begin (python -m ppzoo.hub list --markdown) -->"
ZOO_END = "<!-- model-zoo: end -->"


def _cell(value):
    """A table cell: one line, no bare ``|`` (it would split the cell)."""
    return " ".join(str(value or "").split()).replace("|", "\\|")


def _config_cell(value):
    """Config paths as links (the README and docs/ both sit beside configs/ or one below)."""
    text = _cell(value)
    return ", ".join(f"`{p.strip()}`" if p.strip().startswith("configs/") else p.strip()
                     for p in text.split(",")) if text.startswith("configs/") else text


def markdown_table(table):
    """The model zoo as a Markdown table, one row per entry in table order: what the README
    and docs/weights.md show (a test keeps both equal to this)."""
    rows = ["| name | architecture | dataset | publisher's metric | config that uses it | source | licence |",
            "|---|---|---|---|---|---|---|"]
    for name, e in table.items():
        arch = e.get("architecture") or e["model"]["type"]
        rows.append(f"| `{name}` | {_cell(arch)} | {_cell(e.get('dataset'))} | "
                    f"{_cell(e.get('metrics')) or '-'} | {_config_cell(e.get('config')) or '-'} | "
                    f"[{_cell(e['source'])}]({e['url']}) | {_cell(e['licence'])} |")
    return "\n".join(rows)


def zoo_section(text):
    """The table between the README's model-zoo markers (None when the markers are absent)."""
    if ZOO_BEGIN not in text or ZOO_END not in text:
        return None
    return text.split(ZOO_BEGIN, 1)[1].split(ZOO_END, 1)[0].strip()


def main(argv=None):
    from . import download, load_table, lookup, table_path, weights_dir

    p = argparse.ArgumentParser(prog="python -m ppzoo.hub", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", help="weights table (default: $PPZOO_WEIGHTS_TABLE or the shipped one)")
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="list the weights table")
    ls.add_argument("--markdown", action="store_true", help="the model zoo table of README.md and docs/weights.md")
    dl = sub.add_parser("download", help="download and verify names or URLs into the cache")
    dl.add_argument("names", nargs="+")
    sub.add_parser("path", help="print the cache folder and the table file")
    args = p.parse_args(argv)
    try:
        if args.cmd == "list":
            table = load_table(args.table)
            if args.markdown:
                print(markdown_table(table))
            else:
                for name, e in table.items():
                    model = ", ".join(f"{k}={v}" for k, v in e["model"].items())
                    algo = "sha256" if "sha256" in e else "md5" if "md5" in e else None
                    digest = f"{algo}:{e[algo]}" if algo else "no published hash"
                    print(f"{name:28s} {model:45s} {e['url']} {digest}")
        elif args.cmd == "download":
            for name in args.names:
                if "://" in name:
                    path = download(name)
                else:
                    e = lookup(name, args.table)
                    path = download(e["url"], sha256=e.get("sha256"), md5=e.get("md5"))
                print(f"{name}: {path}")
        else:
            print(f"cache: {weights_dir()}")
            print(f"table: {table_path(args.table)}")
    except PPZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
