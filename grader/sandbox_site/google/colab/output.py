"""``google.colab.output``: the calls notebooks make for Colab's own display, as no-ops."""


def enable_custom_widget_manager() -> None:
    """Widgets need no extra manager here."""


def disable_custom_widget_manager() -> None:
    """Widgets need no extra manager here."""


def clear(wait: bool = False, output_tags=()) -> None:
    """Outputs are kept as the notebook made them."""


def no_vertical_scroll() -> None:
    """No output area scrolls here."""
