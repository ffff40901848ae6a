"""agents: recurrent architectures behind one cell contract, and the harnesses that train them.

    import agents
    cell = agents.make_cell("nru", input_size=10, hidden_size=80, memory_size=64, num_heads=4)
    out, state = cell(inputs)          # inputs [T, B, 10] -> out [T, B, 80]
"""

from agents.cells import RecurrentCell, detach_state, list_cells, make_cell

__all__ = ["RecurrentCell", "detach_state", "list_cells", "make_cell"]
