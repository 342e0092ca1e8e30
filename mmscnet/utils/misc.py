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


def cpu_has_native_bf16():
    """AVX512-BF16 or AMX in /proc/cpuinfo: without them oneDNN emulates bf16,
    slower than fp32."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = f.read()
    except OSError:
        return False
    return 'avx512_bf16' in flags or 'amx_bf16' in flags
