# Windows equivalent of `tri-run` (PowerShell 5.1+ or pwsh): start an engine's runbook headless, or stop it.
#   .\scripts\tri-run.ps1 hl -p duration_s 0            start runbooks/hl_live.ipynb under papermill, detached in a new
#                                                        process group (CREATE_NEW_PROCESS_GROUP); output in runs\
#   .\scripts\tri-run.ps1 list
#   .\scripts\tri-run.ps1 stop hl                        graceful stop: the engine's control plane `shutdown` (Windows has
#                                                        no SIGINT for another process); --via signal = CTRL_BREAK (same console only)
# Same arguments as the Linux/macOS command; the project's venv must exist (uv sync).
$ErrorActionPreference = "Stop"
$root = Split-Path -Parent $PSScriptRoot
$py = Join-Path $root ".venv\Scripts\python.exe"
if (-not (Test-Path $py)) { Write-Error "tri-run: $py not found; set up the project first (uv sync)"; exit 2 }
Push-Location $root
try {
    & $py -m tri_engine.launcher @args
    exit $LASTEXITCODE
} finally {
    Pop-Location
}
