"""The toy study's `aaexp eval`: scores a line y = a·x + b against the toy's truth y = 3x + 1."""

DESCRIPTION = "toy line fit (tests)"


def add_arguments(group) -> None:
    group.add_argument("--toy-line", nargs=2, type=float, metavar=("A", "B"), help="slope and intercept to score")


def claims(args) -> bool:
    return args.toy_line is not None


def run(args) -> int:
    a, b = args.toy_line
    # mean squared error over x uniform on [-1, 1] against 3x + 1: (a-3)²/3 + (b-1)²
    print(f"toy mse {(a - 3) ** 2 / 3 + (b - 1) ** 2:.6f}")
    return 0
