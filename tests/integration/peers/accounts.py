"""Test accounts shared by the Kdc and Winbind peers (same names, same passwords)."""

DEFAULT_USERS = {
    "alice": "alice-Pass1",
    "bob": "bob-Pass2",
    "carol": "carol-Pass3",
}

# group name -> members; alice may use the internet, bob and carol may not.
DEFAULT_GROUPS = {
    "internet": ["alice"],
    "sales": ["carol"],
}
