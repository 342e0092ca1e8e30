"""Training curves from mmengine's scalars.json, several runs overlaid.

    python tools/analysis_tools/plot_logs.py work_dirs/scnet50 work_dirs/r50 \\
        --keys loss coco/bbox_mAP --legend SCNet-50 ResNet-50 --out curves.png

A run is a work dir (every ``<timestamp>/vis_data/scalars.json`` in it, in
time order, so that a resumed training continues its curve) or one
scalars.json file. One panel per key. Training records are plotted against
the iteration; validation records against the epoch (the iteration for
iteration-based training).
"""
import argparse
import glob
import json
import os.path as osp


def scalar_files(run):
    if osp.isfile(run):
        return [run]
    files = sorted(glob.glob(osp.join(run, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(
            f'no */vis_data/scalars.json under {run} (is it an mmengine '
            'work dir with LocalVisBackend?)')
    return files


def read_records(run):
    records = []
    for path in scalar_files(run):
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(
                            f'{path}, line {n}: not JSON ({e.msg})') from None
    return records


def curve(records, key):
    """(x, y, x label) of ``key``: training records by iteration; validation
    records by their step, which is the epoch in an epoch-based training."""
    points = [(r['iter'] if 'iter' in r else r['step'], r[key])
              for r in records if key in r]
    if any('iter' in r for r in records if key in r):
        label = 'iteration'
    else:
        label = 'epoch' if any('epoch' in r for r in records) else 'iteration'
    return [p[0] for p in points], [p[1] for p in points], label


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'runs', nargs='+', help='work dirs or scalars.json files')
    parser.add_argument(
        '--keys',
        nargs='+',
        default=['loss'],
        help='scalars to plot, e.g. loss coco/bbox_mAP coco/AP mIoU')
    parser.add_argument(
        '--legend', nargs='+', help='one name per run (default: the paths)')
    parser.add_argument('--title', default=None)
    parser.add_argument(
        '--out', required=True, help='output image (.png, .pdf, .svg)')
    args = parser.parse_args(argv)
    if args.legend and len(args.legend) != len(args.runs):
        parser.error(
            f'--legend has {len(args.legend)} names for {len(args.runs)} runs')
    legend = args.legend or args.runs
    try:
        runs = [read_records(run) for run in args.runs]
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    for run, records in zip(args.runs, runs):
        for key in args.keys:
            if not any(key in r for r in records):
                available = sorted({k
                                    for r in records
                                    for k in r} - {'epoch', 'iter', 'step'})
                parser.error(f'{key!r} is not logged in {run}; logged: '
                             f'{", ".join(available)}')

    import matplotlib
    matplotlib.use('Agg')  # files only, no display needed
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(
        len(args.keys), 1, figsize=(7, 3 * len(args.keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], args.keys):
        for name, records in zip(legend, runs):
            x, y, xlabel = curve(records, key)
            ax.plot(x, y, marker='o' if len(x) < 20 else None, label=name)
        ax.set_title(key)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend()
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(
        f'plotted {", ".join(args.keys)} of {len(runs)} run(s) to {args.out}')


if __name__ == '__main__':
    main()
