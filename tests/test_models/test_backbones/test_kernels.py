"""The fp32 parity tests under every kernel choice this CPU can make.

oneDNN (convolutions), ATen (BN, pooling, elementwise) and MKL (the fc GEMM)
each pick their kernels, and with them the rounding, by the CPU's ISA; PyTorch
also picks convolution algorithms by thread count. A result that holds on one
CPU may fail on another (AVX-512 servers, where these tests once failed while
passing on AVX2). So the eval-mode parity, BN-folding, released-logits and
mmpose-checkpoint tests run again, each in a fresh process capped to one ISA
(``ONEDNN_MAX_CPU_ISA``, ``ATEN_CPU_CAPABILITY`` and
``MKL_ENABLE_INSTRUCTIONS`` together, as on a CPU of that ISA), with 1 and 2
threads in turn. Which caps this CPU takes comes from /proc/cpuinfo; a cap
it cannot take is skipped by name. The main run of those tests is the
native ISA's fp32 kernels at this process's own thread count.
"""
import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import REPO

# ONEDNN_MAX_CPU_ISA -> (/proc/cpuinfo flags it needs, the names oneDNN gives
# it in its verbose 'isa:' line, ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS).
# A name matches the whole line or its start up to a space. oneDNN 3.12 (torch
# 2.14) calls the AMX level "AVX10.1 and AMX" (its AVX512_CORE_AMX is an alias
# of AVX10_1_512_AMX), older releases "AVX-512 with ... and Intel AMX ...".
_AVX512 = ('avx512f', 'avx512bw', 'avx512vl', 'avx512dq')
_AVX512_BF16 = _AVX512 + ('avx512_vnni', 'avx512_bf16')
_AMX = ('amx_tile', 'amx_bf16', 'amx_int8')
CAPS = {
    'SSE41': (('sse4_1', ), ('Intel SSE4.1', ), 'default', 'SSE4_2'),
    'AVX': (('avx', ), ('Intel AVX', ), 'default', 'AVX'),
    'AVX2': (('avx2', 'fma'), ('Intel AVX2', ), 'avx2', 'AVX2'),
    'AVX2_VNNI': (('avx2', 'fma', 'avx_vnni'),
                  ('Intel AVX2 with Intel DL Boost', ), 'avx2', 'AVX2'),
    'AVX512_CORE': (_AVX512, ('Intel AVX-512', ), 'avx512', 'AVX512'),
    'AVX512_CORE_VNNI':
    (_AVX512 + ('avx512_vnni', ), ('Intel AVX-512 with Intel DL Boost', ),
     'avx512', 'AVX512_E1'),
    'AVX512_CORE_BF16':
    (_AVX512_BF16,
     ('Intel AVX-512 with Intel DL Boost and bfloat16 support', ), 'avx512',
     'AVX512_E1'),
    'AVX10_1_512': (_AVX512_BF16 + ('avx512_fp16', ), ('Intel AVX 10.1', ),
                    'avx512', 'AVX512_E1'),
    'AVX512_CORE_AMX':
    (_AVX512_BF16 + _AMX,
     ('Intel AVX10.1 and Intel AMX with bfloat16 and 8-bit integer support',
      'Intel AVX-512 with Intel DL Boost and bfloat16 support and Intel AMX '
      'with bfloat16 and 8-bit integer support'), 'avx512', 'AVX512_E1'),
}
# The parity cells: one per family of fp32 kernels. The VNNI, BF16, AVX10.1
# and AMX levels add int8/bf16/fp16 instructions; there oneDNN's fp32
# kernels (default fpmath mode) are those of the AVX2 and AVX512_CORE caps.
FP32_CAPS = ('SSE41', 'AVX', 'AVX2', 'AVX512_CORE')
TESTS = [
    'tests/test_models/test_backbones/test_scnet_parity.py::'
    'test_eval_outputs_match_reference',
    'tests/test_deploy/test_deploy_mode.py::test_fused_fp32_equals_unfused',
    'tests/test_configs/test_seg_cls.py::'
    'test_released_classifier_logits_match_reference',
    'tests/test_configs/test_keypoint.py::'
    'test_mmpose_topdown_checkpoint_converts_and_matches',
]


def cpu_flags():
    try:
        with open('/proc/cpuinfo') as f:
            line = next(ln for ln in f if ln.startswith('flags'))
    except (OSError, StopIteration):
        return set()
    return set(line.split(':', 1)[1].split())


FLAGS = cpu_flags()
TAKEN = [cap for cap, (needs, *_) in CAPS.items() if FLAGS.issuperset(needs)]
# The highest parity cell this CPU takes: its fp32 kernels are the native
# ISA's (see FP32_CAPS), those of the main run.
NATIVE_FP32 = ([c for c in FP32_CAPS if c in TAKEN] or [None])[-1]


def cap_env(cap, threads):
    _, _, aten, mkl = CAPS[cap]
    return dict(
        os.environ,
        ONEDNN_MAX_CPU_ISA=cap,
        ATEN_CPU_CAPABILITY=aten,
        MKL_ENABLE_INSTRUCTIONS=mkl,
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads))


def onednn_isa(env):
    """The ISA oneDNN reports for a convolution run in a process with ``env``.
    """
    code = (
        'import torch; import torch.nn.functional as F; '
        'F.conv2d(torch.randn(2, 8, 16, 16), torch.randn(8, 8, 3, 3), '
        'stride=2); print("aten:", torch.backends.cpu.get_cpu_capability())')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         env=dict(env, ONEDNN_VERBOSE='1'),
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    isa = re.search(r'onednn_verbose,.*?info,cpu,isa:(.*)', out.stdout)
    aten = re.search(r'^aten: (\w+)', out.stdout, re.M)
    assert isa and aten, out.stdout[-2000:]
    return isa.group(1).strip(), aten.group(1)


def _skip_unless_taken(cap):
    if cap not in TAKEN:
        pytest.skip(f'ONEDNN_MAX_CPU_ISA={cap}: this CPU lacks '
                    f'{sorted(set(CAPS[cap][0]) - FLAGS)}')


def test_each_cap_takes_effect():
    """Each cap this CPU takes makes oneDNN (and ATen) report that ISA, and no
    two caps give the same kernels: a cap oneDNN ignored would be seen here."""
    print(f'[kernels] CPU caps taken: {TAKEN}; not taken: '
          f'{[c for c in CAPS if c not in TAKEN]}')
    assert 'SSE41' in TAKEN  # every x86-64 CPU these wheels run on
    seen = {}
    for cap in TAKEN:
        isa, aten = onednn_isa(cap_env(cap, 2))
        names = CAPS[cap][1]
        print(f'[kernels] ONEDNN_MAX_CPU_ISA={cap}: oneDNN isa "{isa}", ATen '
              f'{aten}')
        assert any(isa == n or isa.startswith(n + ' ')
                   for n in names), (cap, isa, names)
        assert aten.lower() == CAPS[cap][2], (cap, aten)
        seen[isa] = cap
    assert len(seen) == len(TAKEN), seen


# One process per cap runs the tests at each thread count in turn
# (torch.set_num_threads between two pytest runs; oneDNN keys its cached
# kernels by thread count): the second run reuses the first's imports.
CELL = """
import sys, pytest, torch
for threads in map(int, sys.argv[1].split(',')):
    torch.set_num_threads(threads)
    print(f'[cell] {threads} threads', flush=True)
    rc = pytest.main(sys.argv[2:])
    print(f'[cell] {threads} threads: exit {int(rc)}', flush=True)
"""


@pytest.mark.parametrize('cap', FP32_CAPS)
def test_parity_under_cap(cap):
    _skip_unless_taken(cap)
    # The main run of the tests uses NATIVE_FP32's kernels: that cell at this
    # process's own thread count would repeat it.
    threads = [
        t for t in (1, 2)
        if not (cap == NATIVE_FP32 and t == torch.get_num_threads())
    ]
    out = subprocess.run(
        [
            sys.executable, '-c', CELL, ','.join(map(str, threads)), '-q',
            '-s', '-p', 'no:cacheprovider', '-W', 'ignore::UserWarning'
        ] + TESTS,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=cap_env(cap, max(threads)),
        timeout=1800)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    runs = re.split(r'^\[cell\] (\d+) threads\n', out.stdout, flags=re.M)[1:]
    assert [int(t) for t in runs[::2]] == threads, out.stdout[-3000:]
    for t, text in zip(threads, runs[1::2]):
        lines = [
            ln[ln.index('[parity]'):] for ln in text.splitlines()
            if '[parity]' in ln
        ]
        print(f'[kernels] {cap}, {t} thread(s):', *lines, sep='\n  ')
        assert f'[cell] {t} threads: exit 0' in text, text[-6000:]
        assert re.search(r'\b12 passed\b', text), text[-2000:]
        assert len(lines) == 12 and all(f'({t} threads)' in ln
                                        for ln in lines), lines
