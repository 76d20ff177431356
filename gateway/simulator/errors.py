"""The simulator's errors: each says why a case could not pass or a run could not start."""


class SimulatorError(Exception):
    """Root of the simulator's errors."""

    code = "simulator_error"


class UnknownCaseError(SimulatorError):
    """A `--case` name that names no case, flow or chaos case."""

    code = "unknown_case"


class MissingValueError(SimulatorError):
    """A case needs what an earlier case should have learned (an instanceId), and it did not."""

    code = "missing_value"


class CaseFailedError(SimulatorError):
    """A case's answer was not what the marketplace needs; the message says why."""

    code = "case_failed"


class CaseSkippedError(SimulatorError):
    """A case cannot be judged here (the server cannot reach the identity domain, say); the message says why."""

    code = "case_skipped"
