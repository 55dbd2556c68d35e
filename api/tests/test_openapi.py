"""The OpenAPI document is a contract: errors are problem+json, examples are there."""


def test_every_error_response_is_documented_as_problem_json(client):
    schema = client.get("/openapi.json").json()
    assert "Problem" in schema["components"]["schemas"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (
                        method, path, status)


def test_money_operations_document_refusals_and_idempotency(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/accounts/{account_id}/transactions", "/transfers"):
        post = paths[path]["post"]
        assert {"201", "404", "409", "422"} <= set(post["responses"])
        assert "Idempotency-Key" in [p["name"] for p in post["parameters"]]


def test_request_bodies_have_examples(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("AccountCreate", "TransactionCreate", "TransferCreate"):
        assert schemas[name].get("examples"), name


def test_docs_page_is_served(client):
    assert client.get("/docs").status_code == 200
