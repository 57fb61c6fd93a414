"""Shared test set-up: print how long each notebook took in the papermill smoke run."""


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    times = getattr(config, "notebook_times", None)  # set by tests/test_notebooks.py
    if not times:
        return
    terminalreporter.section("notebooks at the smoke profile (papermill)")
    for name, seconds, ok in times:
        terminalreporter.write_line(f"{name:<40} {'ok' if ok else 'FAILED':<7} {seconds:7.1f} s")
    total = sum(s for _, s, _ in times)
    terminalreporter.write_line(f"{'all notebooks':<40} {'':<7} {total:7.1f} s")
