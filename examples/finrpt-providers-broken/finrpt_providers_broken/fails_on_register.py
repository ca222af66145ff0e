from finrpt_providers import hookimpl


@hookimpl
def register_price_providers(register):
    raise RuntimeError("this plugin is broken on purpose (register)")
