#!/usr/bin/python3
"""Kconfig helper: defconfig/olddefconfig and the 0/1 config header.

kconfiglib's own header omits disabled options; we want every bool defined
as 0 or 1 so code can use #if and -Wundef catches typos.

usage: genconfig.py header KCONFIG DOTCONFIG OUT.h
       genconfig.py defconfig KCONFIG DEFCONFIG DOTCONFIG
       genconfig.py olddefconfig KCONFIG DOTCONFIG
"""
import os
import sys

import kconfiglib


def load(kfile, cfg):
    os.environ.setdefault("srctree", os.path.dirname(os.path.abspath(kfile)))
    k = kconfiglib.Kconfig(kfile, warn_to_stderr=False)
    if cfg and os.path.exists(cfg):
        k.load_config(cfg)
    return k


def header(k, out):
    lines = ["/* Generated from Kconfig; do not edit. */",
             "#ifndef PICO_CONFIG_H", "#define PICO_CONFIG_H"]
    for s in k.unique_defined_syms:
        if s.type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
            lines.append("#define CONFIG_%s %d" % (s.name, 1 if s.str_value != "n" else 0))
        elif s.type in (kconfiglib.INT, kconfiglib.HEX):
            lines.append("#define CONFIG_%s %s" % (s.name, s.str_value or "0"))
        elif s.type == kconfiglib.STRING:
            lines.append("#define CONFIG_%s \"%s\"" % (s.name, kconfiglib.escape(s.str_value)))
    lines.append("#endif")
    text = "\n".join(lines) + "\n"
    if os.path.exists(out) and open(out).read() == text:
        return  # keep the timestamp: no needless rebuild
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, out)


def main(a):
    if a[0] == "header":
        header(load(a[1], a[2]), a[3])
    elif a[0] == "defconfig":
        k = load(a[1], a[2])
        k.write_config(a[3], header="")
    elif a[0] == "olddefconfig":
        k = load(a[1], a[2])
        k.write_config(a[2], header="")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
