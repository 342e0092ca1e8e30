"""Config helpers for the tools: type swaps that are always logged.

Every change that tools/train.py, tools/test.py and tools/infer.py make to a
config beyond what their flags say (a type swapped, a hook or metric added)
goes through :func:`record_rewrite`. The lines are printed when made and
logged again by :func:`log_rewrites` into the run's log once the Runner
exists, so the log of every run says what ran in place of what the config
named (tools/README.md lists them all).
"""
from mmengine.logging import print_log

# The key under which a config carries its rewrite lines until the Runner
# is built; build_runner pops it, so it never reaches a saved config.
_KEY = '_mmscnet_rewrites'


def replace_types(node, old_types, new_type):
    """Set ``type=new_type`` on every dict of a config tree (nested dicts,
    lists, tuples) whose ``type`` is in ``old_types``; return how many."""
    changed = 0
    if isinstance(node, dict):
        if node.get('type') in old_types:
            node['type'] = new_type
            changed += 1
        for value in node.values():
            changed += replace_types(value, old_types, new_type)
    elif isinstance(node, (list, tuple)):
        for value in node:
            changed += replace_types(value, old_types, new_type)
    return changed


def record_rewrite(cfg, old, new, why, count=1):
    """Note one rewrite of ``cfg`` (``old`` -> ``new``, ``count`` places) and
    print it; a no-op for ``count == 0``. Returns ``count``."""
    if not count:
        return 0
    where = f' ({count} places)' if count > 1 else ''
    line = f'config rewrite: {old} -> {new}{where}: {why}'
    lines = list(cfg.get(_KEY) or [])
    if line not in lines:
        lines.append(line)
        print_log(line, logger='current')
    cfg[_KEY] = lines
    return count


def swap_types(cfg, node, old_types, new_type, why):
    """:func:`replace_types` on ``node`` (a part of ``cfg``), recorded."""
    count = replace_types(node, tuple(old_types), new_type)
    return record_rewrite(cfg, '/'.join(dict.fromkeys(old_types)), new_type,
                          why, count)


def pop_rewrites(cfg):
    """The rewrite lines recorded on ``cfg``, removed from it."""
    return list(cfg.pop(_KEY, None) or [])


def log_rewrites(lines, logger):
    """Write the rewrite lines into a Runner's log (its file too)."""
    for line in lines:
        logger.info(line)
