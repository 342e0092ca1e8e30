"""Several trainings side by side: the last validation value of a metric and
the median time per training iteration, from mmengine's scalars.json.

    python tools/analysis_tools/compare_runs.py work_dirs/scnet18 \\
        work_dirs/resnet18 --legend SCNet-18 ResNet-18 --metric accuracy/top1

A run is a work dir or a scalars.json file, as for plot_logs.py.
"""
import argparse
import statistics
import sys

from plot_logs import read_records


def summary(records, metric):
    """(last value of ``metric`` in a validation record, median ``time`` of
    the training records, last training iteration)."""
    train = [r for r in records if 'time' in r and 'iter' in r]
    values = [r[metric] for r in records if metric in r and 'iter' not in r]
    if not values:
        raise ValueError(f'no validation record has {metric!r}')
    if not train:
        raise ValueError('no training record has a time')
    return (values[-1], statistics.median(r['time'] for r in train),
            max(r['iter'] for r in train))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('runs', nargs='+', help='work dirs or scalars.json')
    parser.add_argument('--legend', nargs='+', help='a name per run')
    parser.add_argument(
        '--metric',
        default='accuracy/top1',
        help='validation key (default: accuracy/top1)')
    args = parser.parse_args(argv)
    names = args.legend or args.runs
    if len(names) != len(args.runs):
        parser.error(f'--legend has {len(names)} names for '
                     f'{len(args.runs)} runs')
    rows = []
    for name, run in zip(names, args.runs):
        try:
            rows.append((name, ) + summary(read_records(run), args.metric))
        except (OSError, ValueError) as e:
            sys.exit(f'{run}: {e}')
    width = max(len(n) for n in names + ['run'])
    print(f'{"run":<{width}}  {args.metric:>14}  {"s/iter":>8}  iters')
    for name, value, seconds, iters in rows:
        print(f'{name:<{width}}  {value:>14.2f}  {seconds:>8.3f}  {iters:>5}')
    if len(rows) > 1:
        base = rows[-1]
        for name, _, seconds, _ in rows[:-1]:
            print(f'{name} / {base[0]} time per iteration: '
                  f'{seconds / base[2]:.2f}x')


if __name__ == '__main__':
    main()
