"""The HTTP API's rules apart from the server (pure status paths, parameters, paging), bearer
tokens, readiness, and the static page the web view serves.
"""
