"""Recurrent cells behind one contract (see :mod:`agents.cells.base`); one file per family."""

from agents.cells.base import (
    CELLS,
    RecurrentCell,
    State,
    cat_states,
    cell_class,
    detach_state,
    list_cells,
    make_cell,
    map_state,
    reset_state,
    select_state,
)

__all__ = [
    "CELLS",
    "RecurrentCell",
    "State",
    "cat_states",
    "cell_class",
    "detach_state",
    "list_cells",
    "make_cell",
    "map_state",
    "reset_state",
    "select_state",
]
