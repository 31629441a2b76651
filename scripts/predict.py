"""`mygo predict` (src/mygo/cli/predict.py) as a script: `python scripts/predict.py --help`."""
from mygo.cli import predict, stage_main

if __name__ == "__main__":
    stage_main(predict)
