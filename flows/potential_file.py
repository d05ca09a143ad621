"""``--potential FILE.mtp`` and ``--species`` on the command line: the checks every HMC command makes before
anything starts (``pesflow sample``, ``temper``, ``melt``, ``coexist``, ``seed``).

A fitted MTP file is accepted when it exists, parses as an MLIP ``.mtp`` file (:func:`hmc_core.mtp.io.
read_mtp_fields`), is trained (has ``moment_coeffs``) and the elements of its species indices are known:
from a pesflow ``potential_tag = species:…`` or from ``--species`` (both given: they must agree). Every failure is
a :class:`flows.app.UserError` (one line, exit status 2) naming the file and the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flows.app import UserError


def parse_species(text: str) -> list[int]:
    """``--species``: element symbols or atomic numbers, comma- or space-separated (``Mo,Li,H`` or ``42 3 1``),
    in the order of the potential file's species indices 0, 1, …; returns atomic numbers."""
    from ase.data import atomic_numbers, chemical_symbols

    tokens = text.replace(",", " ").split()
    if not tokens:
        raise UserError("--species is empty: give element symbols or atomic numbers, e.g. --species Mo,Li")
    out = []
    for token in tokens:
        if token.isdigit():
            z = int(token)
            if not 1 <= z < len(chemical_symbols):
                raise UserError(f"--species: atomic number {z} is outside 1–{len(chemical_symbols) - 1}")
        else:
            z = atomic_numbers.get(token[:1].upper() + token[1:].lower(), 0)
            if z == 0:
                raise UserError(f"--species: unknown element symbol {token!r}; give element symbols (Mo, Li, H) "
                                "or atomic numbers, in the order of the potential's species indices 0, 1, …")
        out.append(z)
    if len(set(out)) != len(out):
        raise UserError(f"--species: an element is given twice ({text}); each species index is one element")
    return out


def mtp_species(path: Path, elements: list[int] | None = None) -> list[int]:
    """The atomic numbers of the species indices 0, 1, … of the trained ``.mtp`` file ``path``: ``elements``
    (from ``--species``) or the file's pesflow ``potential_tag``. UserError for a missing file, a file that is
    not an MLIP ``.mtp`` file, an untrained template, missing elements or a ``--species`` that disagrees."""
    from hmc_core.mtp.io import MTPFileError, read_mtp_fields

    path = Path(path)
    if not path.exists():
        raise UserError(f"--potential: no such potential file: {path}")
    if not path.is_file():
        raise UserError(f"--potential {path} is a directory; give a fitted .mtp file")
    try:
        fields = read_mtp_fields(path)
    except MTPFileError as exc:
        raise UserError(f"--potential: {exc}") from None
    if "moment_coeffs" not in fields:
        raise UserError(f"--potential {path} is an untrained MTP template (no moment_coeffs); give a fitted potential "
                        "(e.g. the final.mtp of a campaign)")
    tag = fields.get("potential_tag", "")
    named = [int(v) for v in tag[len("species:"):].split(",") if v] if tag.startswith("species:") else None
    n = fields["species_count"]
    if elements is None and named is None:
        raise UserError(f"{path} does not name the elements of its {n} species (an MLIP- or motep-trained file): "
                        f"give them with --species in the order of the file's species indices 0…{n - 1}, "
                        "e.g. --species Mo or --species 42,3")
    if elements is not None and len(elements) != n:
        raise UserError(f"--species gives {len(elements)} elements but {path} has species_count = {n}")
    if elements is not None and named is not None and elements != named:
        raise UserError(f"--species {elements} contradicts {path}, which names its species {named} "
                        "(potential_tag); drop --species or correct it")
    return list(elements or named)


def load_mtp(path: Path, species, elements: list[int] | None = None):
    """Read a fitted MTP (elements of its species indices from ``elements`` or its ``potential_tag``, see
    :func:`mtp_species`) and check it covers the structure's ``species`` (atomic numbers). Moves closer than the
    file's ``min_dist`` are rejected (energy NaN), not a crash."""
    from hmc_core.mtp import read_mtp
    from hmc_core.potentials.base import PotentialError

    mtp = read_mtp(path, species=mtp_species(path, elements), below_min_dist="nan")
    try:
        mtp.check_species(np.asarray(species))
    except PotentialError as exc:
        raise UserError(f"--potential {path}: {exc}") from None
    return mtp


def refuse_lj_options(given: dict[str, bool], potential: Path | None) -> None:
    """With ``--potential`` the options that only mean something for the built-in Lennard-Jones systems
    (``given``: option name → whether the user set it) are refused, and the MTP-only ones without it."""
    if potential is not None:
        for name, was_given in given.items():
            if was_given:
                raise UserError(f"{name} applies to the built-in Lennard-Jones systems only; with --potential the "
                                "element comes from the .mtp file (or --species) and its cutoff is the file's "
                                "max_dist: drop " + name)


def refuse_mtp_options(given: dict[str, bool]) -> None:
    """``--species`` / ``--lattice-constant`` without ``--potential``: refused (they describe a potential file)."""
    for name, was_given in given.items():
        if was_given:
            raise UserError(f"{name} describes a --potential FILE.mtp; give --potential too (or drop {name})")
