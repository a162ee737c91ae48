"""The gas table's dynamic part (the static part, a fixed cost per opcode, is the `gas` column of
crush.casm.OPS).

EVM-style: every instruction first pays its opcode's fixed cost; an instruction whose work
depends on the size of its operands also pays, *before* doing that work, for the work it is
about to do, in these units. Nothing the VM does is unpaid: a single instruction's work is
bounded by the gas it was charged (and by the arena for what it allocates). Running out of gas
consumes all that is left and traps at the instruction that could not pay.
"""

from __future__ import annotations

CELL = 1         # per reference slot created (a list/tuple item; a dict entry is 2)
WORD_BYTES = 32  # bytes per WORD: str and big-int data created, copied or scanned
WORD = 1         # per WORD_BYTES of such data (the first WORD_BYTES of an operation are free)
ELEMENT = 1      # per element visited by a container comparison, search, iteration inside a builtin
SORT = 1         # per comparison a sort may make: n * ceil(log2 n)
HASH = 1         # per element of a tuple hashed as a dict key
LIMB_PRODUCT = 1  # per 256 products of 64-bit limbs in big-int multiplication, division, power
TRACE = 1        # per object visited by an arena recount (crush/arena.py)
CAP_BYTE = 1     # per WORD_BYTES moved through a capability (fs.read/fs.write/log data)
CAP_CALL = {     # a capability's cost on top of CAP's static cost
    "fs.read": 200, "fs.list": 200, "fs.write": 400, "fs.stat": 100, "log": 20, "clock": 10,
    "sleep": 10, "yield": 0, "random": 5, "control.status": 200,
    "stdin.read": 20, "proc.list": 2000, "tty.info": 20, "tty.key": 20,
}


def words(nbytes: int) -> int:
    """Gas for moving or scanning `nbytes` bytes of data."""
    return (nbytes // WORD_BYTES) * WORD


def limbs(bits: int) -> int:
    return (abs(bits) + 63) // 64


def product(bits_a: int, bits_b: int) -> int:
    """Gas for multiplying (or dividing) integers of these sizes (schoolbook bound)."""
    return (limbs(bits_a) * limbs(bits_b)) // 256 * LIMB_PRODUCT


def sort(n: int) -> int:
    return n * max(1, (n - 1).bit_length()) * SORT if n > 1 else 0
