"""FHIR R4 knowledge the controls need: interactions, SMART scopes, OperationOutcome."""
