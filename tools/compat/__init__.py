"""The Prefect x Python compatibility matrix behind `nox -s compat` (README.md here).

matrix     the cells (Prefect versions, Pythons, exclusions) and where each Python is
cell       what one cell installs and runs, and its result file
run_pytest one pytest run with a timeout, summarized as JSON (runs in the cell's virtualenv)
report     the table of the cells' results, printed and merged into latest.json
dropin     the pytest plugin that swaps the toolkit's harness into the flow suite
suite/     the 20-test flow suite, written as a user writes it against Prefect's harness
"""
