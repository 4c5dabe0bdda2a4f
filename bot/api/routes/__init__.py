"""HTTP routes, one module per area. Each module has a `router`; create_app includes them one by one."""
