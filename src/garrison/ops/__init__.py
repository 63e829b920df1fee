"""Operating an installation: ``garrison doctor``'s checks of a workspace and its host."""

from garrison.ops.doctor import TOOLS, Check, DoctorReport, Status, Tool, run_doctor

__all__ = ["TOOLS", "Check", "DoctorReport", "Status", "Tool", "run_doctor"]
