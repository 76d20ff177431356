"""The admin API: GraphQL (Strawberry) over the tenants services, mounted by the gateway at /graphql.

Imports `tenants` only; what it needs from its host (the database, the products, a way to
ask an adapter again) comes in through `ApiHost`.
"""
