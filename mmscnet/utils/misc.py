"""Small helpers shared across the package."""


def needs_package(registry, name, package, install):
    """Register ``name`` in ``registry`` as a placeholder whose construction
    raises ImportError saying what to install, for a class that needs an
    optional package: its registry name then resolves in every environment
    (a registry location must import without the package) and fails with a
    clear message only where it is used."""

    def __init__(self, *args, **kwargs):
        raise ImportError(f'mmscnet.{name} needs {package}: {install}')

    placeholder = type(name, (), {
        '__init__': __init__,
        '__doc__': f'{name}: needs {package}.'
    })
    return registry.register_module(module=placeholder)


# The /proc/cpuinfo flags that decide which oneDNN kernels (and rounding) a
# CPU gets, and whether bf16 is native.
SPEED_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16',
               'amx_bf16')


def cpu_info():
    """(model name, set of flags) from /proc/cpuinfo; ('unknown', set())
    where it cannot be read."""
    try:
        with open('/proc/cpuinfo') as f:
            lines = f.read().splitlines()
    except OSError:
        return 'unknown', set()
    field = {}
    for line in lines:
        key, _, value = line.partition(':')
        field.setdefault(key.strip(), value.strip())
    return field.get('model name',
                     'unknown'), set(field.get('flags', '').split())


def cpu_description():
    """'MODEL; avx2 fma -avx512f ...': the CPU and, of SPEED_FLAGS, which it
    has (a '-' marks one it lacks), for speed figures."""
    model, flags = cpu_info()
    return model + '; ' + ' '.join(f if f in flags else '-' + f
                                   for f in SPEED_FLAGS)


def cpu_has_native_bf16():
    """AVX512-BF16 or AMX in /proc/cpuinfo: without them oneDNN emulates bf16,
    slower than fp32."""
    flags = cpu_info()[1]
    return 'avx512_bf16' in flags or 'amx_bf16' in flags


def register_load_pre_hook(module, hook):
    """Call ``hook(module, state_dict, prefix, ...)`` before ``module`` loads
    a state dict. ``register_load_state_dict_pre_hook`` is public from torch
    2.5; before that the same hook goes through the private name, with
    ``with_module=True`` for the same signature."""
    if hasattr(module, 'register_load_state_dict_pre_hook'):
        return module.register_load_state_dict_pre_hook(hook)
    return module._register_load_state_dict_pre_hook(hook, with_module=True)
