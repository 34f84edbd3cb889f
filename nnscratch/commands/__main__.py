"""``python -m nnscratch.commands ...``: the ``nnscratch`` command without its installed script."""

from nnscratch.commands import main

if __name__ == "__main__":
    raise SystemExit(main())
