"""The shape of the package and its docs: OpenMMLab's layout, registry
locations that name packages, no import circle and no upward import, every
relative link in every README resolving, no commit hashes or issue numbers
in the docs."""
import ast
import importlib.util
import os
import re
import subprocess
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / 'mmscnet'


def _module_name(path):
    rel = path.relative_to(REPO).with_suffix('')
    parts = rel.parts[:-1] if rel.name == '__init__' else rel.parts
    return '.'.join(parts)


def _import_graph():
    """{module: {mmscnet modules it imports}}, from every import statement in
    the package (top level and inside functions alike), relative ones resolved.
    """
    modules = {_module_name(p): p for p in PACKAGE.rglob('*.py')}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == '__init__.py' else name.rpartition(
            '.')[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ''
                if node.level:
                    anchor = package.split('.')[:len(package.split('.')) -
                                                node.level + 1]
                    base = '.'.join(anchor + ([base] if base else []))
                # `from pkg import sub` imports the submodule where one is.
                targets = [
                    f'{base}.{a.name}'
                    if f'{base}.{a.name}' in modules else base
                    for a in node.names
                ]
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def _cycles(graph):
    """Every strongly connected component with more than one module (Tarjan).
    """
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    graph = _import_graph()
    assert len(graph) > 30  # the walk saw the package
    assert 'mmscnet.utils.config' in graph['mmscnet.datasets.datacheck']
    assert _cycles(graph) == []


# The package's layers, bottom to top. A module imports only from its own
# layer or below. The backbone file is the released idea and the bottom of
# models/; the general layer builds on its SCConv (SCNet finds SCNet-18/34's
# block by registry name, not by import); everything else uses the models.
LAYERS = [
    ('mmscnet.version', 'mmscnet.registry', 'mmscnet.utils'),
    ('mmscnet.models.utils', ),
    ('mmscnet.models.backbones', ),
    ('mmscnet.models.layers', ),
    ('mmscnet.models', ),
    ('mmscnet', ),  # engine, datasets, deploy, adapters, apis, ...
]


def _layer(module):
    """The rank of the most specific layer prefix that names ``module``
    (mmscnet.models.layers, not mmscnet.models)."""
    matches = [(len(p), rank) for rank, names in enumerate(LAYERS)
               for p in names if module == p or module.startswith(p + '.')]
    assert matches, module
    return max(matches)[1]


def _upward_imports(graph):
    return sorted((m, t) for m, targets in graph.items() for t in targets
                  if _layer(t) > _layer(m))


def test_no_module_imports_from_a_layer_above_its_own():
    graph = _import_graph()
    assert _layer('mmscnet.models.layers.self_calibrated_conv') == 3
    assert _layer('mmscnet.models') == 4 and _layer('mmscnet.deploy') == 5
    assert _upward_imports(graph) == []


def test_the_direction_check_finds_an_upward_import():
    graph = {
        'mmscnet.utils.misc': {'mmscnet.apis.tool_setup'},
        'mmscnet.models.backbones.scnet': {'mmscnet.models.layers.x'},
        'mmscnet.apis.tool_setup': {'mmscnet.utils.misc'}
    }
    assert _upward_imports(graph) == [
        ('mmscnet.models.backbones.scnet', 'mmscnet.models.layers.x'),
        ('mmscnet.utils.misc', 'mmscnet.apis.tool_setup')
    ]


def test_the_circle_finder_finds_one():
    # The check above can fail: a circle between two modules is found.
    assert _cycles({
        'a': {'b'},
        'b': {'c'},
        'c': {'a'},
        'd': {'a'}
    }) == [['a', 'b', 'c']]


def test_openmmlab_layout_and_registry_locations():
    from mmscnet import registry
    for path in ('models/backbones/scnet.py',
                 'engine/hooks/checkpoint_hook.py',
                 'engine/optimizers/cpu_amp_optim_wrapper.py',
                 'datasets/transforms/loading.py', 'apis/inference.py',
                 'visualization/pose.py', 'deploy/optimize.py',
                 'utils/checkpoint_io.py', 'testing/toy_data.py',
                 'models/layers/self_calibrated_conv.py'):
        assert (PACKAGE / path).is_file(), path
    # Nothing but the registry and the version beside the packages.
    assert sorted(p.name for p in PACKAGE.glob('*.py')) == [
        '__init__.py', 'registry.py', 'version.py'
    ]
    locations = {
        r.name: r._locations
        for r in (registry.MODELS, registry.HOOKS, registry.TRANSFORMS,
                  registry.VISUALIZERS, registry.OPTIM_WRAPPERS)
    }
    assert locations == {
        'model': ['mmscnet.models'],
        'hook': ['mmscnet.engine.hooks'],
        'transform': ['mmscnet.datasets.transforms'],
        'visualizer': ['mmscnet.visualization'],
        'optim_wrapper': ['mmscnet.engine.optimizers']
    }
    for names in locations.values():
        for name in names:  # each a package, not a module
            assert importlib.util.find_spec(
                name).submodule_search_locations, name


def _readmes():
    # os.walk, pruned: never into the environments (.venv, and those the
    # compatibility job makes and removes while the suite runs).
    skip = ('build', 'work_dirs', 'data', 'node_modules')
    found = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in skip and not d.startswith('.')]
        if 'README.md' in files:
            found.append(Path(folder) / 'README.md')
    return sorted(found)


def _relative_links(text):
    # [text](target) and ![alt](target), code spans left out.
    text = re.sub(r'```.*?```', '', text, flags=re.S)
    text = re.sub(r'`[^`\n]*`', '', text)
    for target in re.findall(r'\]\(([^)\s]+)\)', text):
        if not re.match(r'[a-z]+://|mailto:|#', target):
            yield target.split('#')[0]


def _anchors(text):
    # GitHub's heading anchors: lower case, no punctuation, and a dash for
    # each space.
    text = re.sub(r'```.*?```', '', text, flags=re.S)
    return {
        re.sub(r'[^\w\- ]', '',
               h.strip().lower()).replace(' ', '-')
        for h in re.findall(r'^#+ (.+)$', text, flags=re.M)
    }


def test_every_relative_link_in_every_readme_resolves():
    readmes = _readmes()
    for folder in ('', 'configs', 'tools', 'docker', 'tests'):
        assert REPO / folder / 'README.md' in readmes, folder
    broken = []
    for readme in readmes:
        text = readme.read_text()
        for target in _relative_links(text):
            if not (readme.parent / target).exists():
                broken.append(f'{readme.relative_to(REPO)}: {target}')
        for anchor in re.findall(r'\]\(#([^)]+)\)', text):
            if anchor not in _anchors(text):
                broken.append(f'{readme.relative_to(REPO)}: #{anchor}')
    assert broken == []


def test_the_link_checker_sees_a_broken_link(tmp_path):
    text = ('See [a](missing/file.md), [b](#nowhere) and `[c](in/code.md)`.\n'
            '# Here\n')
    assert list(_relative_links(text)) == ['missing/file.md']
    assert 'nowhere' not in _anchors(text) and 'here' in _anchors(text)


def test_front_page_and_tools_readme_are_short():
    assert len((REPO / 'README.md').read_text().splitlines()) <= 250
    assert len((REPO / 'tools' / 'README.md').read_text().splitlines()) <= 300


# ---------------------------------------------------------------- tests


def test_test_folders_mirror_the_package_and_the_quick_tier_exists():
    from conftest import QUICK_MODULES
    tests = REPO / 'tests'
    files = [p for p in tests.rglob('test_*.py')]
    names = [p.name for p in files]
    assert len(names) == len(set(names))  # one module name, one file
    assert QUICK_MODULES <= set(names), QUICK_MODULES - set(names)
    # tests/test_<x>/... mirrors mmscnet/<x>/... (or configs/ and tools/).
    for folder in (p for p in tests.rglob('test_*') if p.is_dir()):
        rel = folder.relative_to(tests).parts
        target = [part[len('test_'):] for part in rel]
        top = REPO / target[0] if target[0] in ('configs', 'tools') else \
            PACKAGE.joinpath(*target)
        assert top.is_dir(), f'tests/{"/".join(rel)} mirrors nothing'


# "main at 0ef1ecc", "commit 5eab047", "at e5ba08c": a commit hash in prose.
# Checkpoint names (scnet50-dc6a7e87.pth) have a dash before the hex.
COMMIT = re.compile(r'\b(?:main at|commit|at)\s+`?([0-9a-f]{7,40})\b')
# This project's issues: "issue 21", "issues 33 and 34", "#33". An upstream
# issue keeps its repository before it ("mmengine issue 1655") or a URL.
UPSTREAM = ('mmengine', 'mmcv', 'mmdet', 'mmdetection', 'mmseg',
            'mmsegmentation', 'mmpretrain', 'mmpose', 'mmdeploy', 'pytorch',
            'torch', 'onnxruntime', 'openvino')
ISSUE = re.compile(
    r'(?:(\w+)\s+)?\b(?:issues?|pull request|PR)\s+#?\d+|'
    r'(?<![\w/&])#\d+\b', re.I)


def _history_references(text):
    found = [m.group(0) for m in COMMIT.finditer(text)]
    found += [
        m.group(0) for m in ISSUE.finditer(text)
        if (m.group(1) or '').lower() not in UPSTREAM
    ]
    return found


def test_docs_cite_no_commit_hashes_or_issue_numbers():
    """Docs are for users: the investigation story (which commit, which
    issue) belongs in commit messages."""
    tracked = subprocess.run(['git', 'ls-files', '*.md'],
                             capture_output=True,
                             text=True,
                             cwd=REPO,
                             check=True).stdout.split()
    assert 'README.md' in tracked and 'tools/README.md' in tracked
    found = {
        path: refs
        for path in tracked
        for refs in [_history_references((REPO / path).read_text())] if refs
    }
    assert found == {}


def test_the_history_check_finds_hashes_and_issue_numbers():
    assert _history_references(
        'measured at main at 0ef1ecc; commit 5eab047 and at e5ba08c; the '
        'AMD EPYC VM of issue 21; see #33; issues 33 and 34') == [
            'main at 0ef1ecc', 'commit 5eab047', 'at e5ba08c', 'of issue 21',
            '#33', 'issues 33'
        ]
    assert _history_references(
        'scnet50-dc6a7e87.pth; mmengine issue 1655; https://github.com/'
        'open-mmlab/mmengine/issues/1655; at 224x224; commit the change; '
        'CVPR 2020') == []
