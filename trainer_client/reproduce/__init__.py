"""`trainer-client reproduce`: the paper's experiments at toy scale, each one command.

- `trainer_client.reproduce.tradeoff`: the pass@1 / pass@k trade-off of Tables 1-2 and Figures 5 and 14.
- `trainer_client.reproduce.exact`: exact pass@k of a policy whose answers are one token.
- `trainer_client.reproduce.report`: tradeoff.json, tradeoff.md and the numbers they hold.
"""
