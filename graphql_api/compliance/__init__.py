"""Compliance (SPEC §17): the audit log and its hash chain, client-file exports, retention and
erasure. One module per job; the access rule (admins only) is the policy's."""
