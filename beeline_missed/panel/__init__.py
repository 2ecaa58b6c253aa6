"""The «Автосервис» panel: a Textual app over the register (`beeline-missed panel`)."""
