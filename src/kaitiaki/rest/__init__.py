"""Non-FHIR REST routes: OpenAPI validation and the standard's ``errors[]`` body."""
