"""Structural check of an ELF64 relocatable object before LLVM's JIT linker sees it.

The linker trusts its input: a section or relocation that points outside the file makes it
read or write wild memory. A cache entry passed its checksum, but a checksum only proves
the bytes are the ones stored, so every offset, size and index the linker will follow is
bounded here first, and the symbols the caller will look up must be defined functions.
Only ELF is checked (Linux, the platform the JIT runs on); other formats are refused.
"""

from __future__ import annotations

import platform
import struct

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")
_MACHINES = {"x86_64": 62, "amd64": 62, "aarch64": 183, "arm64": 183}
_SHT_SYMTAB, _SHT_STRTAB, _SHT_RELA, _SHT_NOBITS, _SHT_REL = 2, 3, 4, 8, 9
_SHN_LORESERVE = 0xFF00
_STT_FUNC = 2
_MAX_SECTIONS = 4096
_MAX_ALIGN = 1 << 16
#: Section types our JIT objects hold: null, progbits, symtab, strtab, rela, nobits, rel,
#: LLVM address-significance, x86-64 unwind (types with cross-links LLVM checks fatally,
#: such as SHT_SYMTAB_SHNDX or groups, are refused).
_SECTION_TYPES = {0, 1, 2, 3, 4, 8, 9, 0x6FFF4C03, 0x70000001}
#: write, alloc, exec, merge, strings, info-link, link-order, group, x86-64 large.
_SECTION_FLAGS = 0x1 | 0x2 | 0x4 | 0x10 | 0x20 | 0x40 | 0x80 | 0x200 | 0x10000000
#: x86-64 relocation types valid in a relocatable object -> bytes patched (the dynamic-only
#: types 5-8 and unknown ones are refused).
_X86_64_RELOCS = {t: 4 for t in range(1, 43) if t not in (5, 6, 7, 8)}
_X86_64_RELOCS.update({t: 8 for t in (1, 24, 25, 27, 28, 29, 30, 31, 33)})
_X86_64_RELOCS.update({12: 2, 13: 2, 14: 1, 15: 1})


def _x86_64() -> bool:
    return _MACHINES.get(platform.machine().lower()) == 62


class BadObject(ValueError):
    """Internal: why an object was refused (the cache logs it and rebuilds)."""


def _need(ok: bool, why: str) -> None:
    if not ok:
        raise BadObject(why)


def _sections(data: bytes):
    _need(len(data) >= _EHDR.size, "shorter than an ELF header")
    (ident, e_type, machine, _v, _entry, _phoff, shoff, _flags, ehsize, _phes, _phnum,
     shentsize, shnum, shstrndx) = _EHDR.unpack_from(data)
    _need(ident[:4] == b"\x7fELF" and ident[4] == 2 and ident[5] == 1, "not little-endian ELF64")
    _need(e_type == 1, f"ELF type {e_type}, not a relocatable object")
    want = _MACHINES.get(platform.machine().lower())
    _need(want is None or machine == want, f"ELF machine {machine}, host needs {want}")
    _need(ehsize == _EHDR.size and shentsize == _SHDR.size, "unexpected ELF header sizes")
    _need(0 < shnum <= _MAX_SECTIONS and shstrndx < shnum, f"{shnum} sections")
    _need(shoff + shnum * _SHDR.size <= len(data), "section table outside the file")
    sections = [_SHDR.unpack_from(data, shoff + i * _SHDR.size) for i in range(shnum)]
    _need(not any(sections[0]), "section 0 is not the null section")
    names = sections[shstrndx]
    _need(names[1] == _SHT_STRTAB, "section names are not in a string table")
    for i, (name, kind, flags, _addr, off, size, link, _info, align, _es) in \
            enumerate(sections):
        _need(kind in _SECTION_TYPES, f"section {i} has type 0x{kind:x}")
        _need(flags & ~_SECTION_FLAGS == 0, f"section {i} has flags 0x{flags:x}")
        _need(align <= _MAX_ALIGN and align & (align - 1) == 0, f"section {i} alignment {align}")
        _need(kind == _SHT_NOBITS or off + size <= len(data), f"section {i} outside the file")
        _need(link < shnum, f"section {i} links to section {link}")
        _need(i == 0 or name < names[5], f"section {i} name outside the name table")
        if kind == _SHT_STRTAB and size:
            _need(data[off + size - 1] == 0, f"string table {i} is not terminated")
    return sections


def _symbols(data: bytes, sections, index: int):
    _n, _k, _f, _a, off, size, link, _i, _al, entsize = sections[index]
    _need(entsize == _SYM.size and size % _SYM.size == 0, "bad symbol table entry size")
    strtab = sections[link]
    _need(strtab[1] == _SHT_STRTAB, "symbol names are not in a string table")
    symbols = []
    for k in range(size // _SYM.size):
        name, info, other, shndx, value, sym_size = _SYM.unpack_from(data, off + k * _SYM.size)
        _need(name < strtab[5], f"symbol {k} name outside its string table")
        _need(info & 0xF <= 4 and info >> 4 <= 2 and other <= 3, f"symbol {k} kind {info}")
        _need(shndx < len(sections) or shndx >= _SHN_LORESERVE, f"symbol {k} section {shndx}")
        if 0 < shndx < len(sections):
            _need(value + sym_size <= sections[shndx][5], f"symbol {k} lies outside its section")
        end = data.find(b"\0", strtab[4] + name, strtab[4] + strtab[5])
        _need(end >= 0, f"symbol {k} name is not terminated")
        symbols.append((data[strtab[4] + name:end], info & 0xF, shndx))
    return symbols


def _check_relocations(data: bytes, sections, index: int, symbol_count: dict) -> None:
    _n, kind, _f, _a, off, size, link, target, _al, entsize = sections[index]
    width = _RELA.size if kind == _SHT_RELA else 16
    _need(entsize == width and size % width == 0, f"section {index}: bad relocation size")
    _need(link in symbol_count and 0 < target < len(sections),
          f"section {index}: relocations for section {target} with symbols {link}")
    target_size = sections[target][5]
    for k in range(size // width):
        r_offset, r_info = struct.unpack_from("<QQ", data, off + k * width)
        _need((r_info >> 32) < symbol_count[link], f"relocation {k} names a missing symbol")
        patched = _X86_64_RELOCS.get(r_info & 0xFFFFFFFF) if _x86_64() else 4
        _need(patched is not None, f"relocation {k} has unexpected type {r_info & 0xFFFFFFFF}")
        _need(r_offset + patched <= target_size, f"relocation {k} patches outside its section")


def check_object(data: bytes, symbols=()) -> set:
    """Raise BadObject unless ``data`` is a well-formed object defining ``symbols``;
    the names (bytes) of the functions it defines."""
    sections = _sections(data)
    tables = {i: _symbols(data, sections, i) for i, s in enumerate(sections)
              if s[1] == _SHT_SYMTAB}
    _need(bool(tables), "no symbol table")
    counts = {i: len(t) for i, t in tables.items()}
    for i, s in enumerate(sections):
        if s[1] in (_SHT_RELA, _SHT_REL):
            _check_relocations(data, sections, i, counts)
    defined = {name for table in tables.values() for name, kind, shndx in table
               if kind == _STT_FUNC and 0 < shndx < len(sections)}
    missing = [s for s in symbols if s.encode() not in defined]
    _need(not missing, f"does not define {missing[:3]}")
    return defined
