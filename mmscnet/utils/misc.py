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
