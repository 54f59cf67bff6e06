// Policy files: parsed, validated, turned into supervision specs (to come).
import AgentOSSupervision
