# Windows equivalent of `tri-ctl` (PowerShell 5.1+ or pwsh): see and stop the running engines over the loopback control plane.
#   .\scripts\tri-ctl.ps1 status [--json]
#   .\scripts\tri-ctl.ps1 halt all --reason "desk drill"
#   .\scripts\tri-ctl.ps1 resume hl | flatten hl | cancel-all hl | kill all | shutdown hl
# The token of each run is in runs\<run>\control.token, readable only by the user who started it (owner-only ACL).
$ErrorActionPreference = "Stop"
$root = Split-Path -Parent $PSScriptRoot
$py = Join-Path $root ".venv\Scripts\python.exe"
if (-not (Test-Path $py)) { Write-Error "tri-ctl: $py not found; set up the project first (uv sync)"; exit 2 }
& $py -m tri_engine.control @args
exit $LASTEXITCODE
