"""`jstip demo`: the mini recipe end to end on the built-in corpus (jstip.demo.commands)."""
