"""The three-account ES plan that the tests over the recorded CME book share."""

from __future__ import annotations

PLAN = {
    "accounts.csv": "account_id,cash\nDU1,1000\nDU2,25000\nDU3,60000\n",
    "positions.csv": "account_id,instrument,quantity\nDU1,ES,10\nDU2,ES,4\n",
    "requests.csv": (
        "request_id,account_id,instrument,side,quantity\ns1,DU1,ES,SELL,7\ns2,DU2,ES,SELL,4\nb1,DU3,ES,BUY,15\n"
    ),
}
