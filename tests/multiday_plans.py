"""The day-plan folder and run parameters the multi-day backtest tests share."""

from __future__ import annotations

from pathlib import Path

PARAMS = ["--param", "phase_deadline_secs=45", "--param", "sync_timeout_secs=10", "--log-level", "OFF"]
PLAN_A = {
    "accounts.csv": "account_id,cash\nDU1,1000\nDU2,40000\n",
    "positions.csv": "account_id,instrument,quantity\nDU1,SPY,30\n",
    "requests.csv": "request_id,account_id,instrument,side,quantity\ns1,DU1,SPY,SELL,20\nb1,DU2,QQQ,BUY,30\n",
}


def write_plan_folder(folder: Path, files: dict[str, str] = PLAN_A) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder
