"""CRUSH: walkers (tree-sitter) turn source code into CAST, the compiler lowers CAST to CASM
bytecode, and the CRUSH VM runs it gas-metered, arena-bounded and capability-mediated, with a
state that can be serialised at any instruction and resumed elsewhere. Free of exo_init imports."""
