"""Reading an import's file: CSV and NDJSON as they come from spreadsheets and scripts, each row checked
on its own and against the others, a file unreadable as a whole refused whole."""

import pytest
from pydantic import SecretStr

from services.errors import Invalid
from services.imports import CSV, IN_CMMS_NEEDS_PASSWORD, NDJSON, import_id_of, read_rows

IMEI = "490154203237518"


def test_a_spreadsheets_csv_is_read_with_its_bom_quotes_spaces_and_crlf() -> None:
    text = (
        "\ufeffaccount_id, customer_id ,product_id,in_cmms,password,imei\r\n"
        '"a-1",cust,prod,TRUE,"pa,ss-word-1",490154203237518\r\n'
        "a-2,cust,prod,,,\r\n"
        ",,,,,\r\n"  # an empty row is no row
        "a-3,cust,prod,no,,,extra\r\n"
    )
    rows, rejected = read_rows(text.encode(), CSV)
    assert [(r.line, r.account_id, r.imei, r.in_cmms) for r in rows] == [
        (2, "a-1", IMEI, True),
        (3, "a-2", None, False),
    ]
    assert rows[0].password == "pa,ss-word-1" and rows[1].password is None
    assert [(r.line, r.reason) for r in rejected] == [(5, "7 fields, but the header names 6")]


def test_a_csv_needs_a_header_naming_the_required_columns_once() -> None:
    for header in ("account_id,customer_id\n", "account_id,customer_id,product_id,colour\n", "a,b,c\n"):
        with pytest.raises(Invalid, match="header"):
            read_rows((header + "x,y,z\n").encode(), CSV)
    with pytest.raises(Invalid, match="header"):
        read_rows(b"account_id,customer_id,product_id,account_id\nx,y,z,x\n", CSV)


def test_each_ndjson_row_is_checked_on_its_own() -> None:
    body = "\n".join(
        [
            '{"account_id":"a-1","customer_id":"c","product_id":"p","imei":"490154203237518","in_cmms":null}',
            '{"account_id":"a-2","customer_id":"c","product_id":"p","imei":490154203237518}',
            '{"account_id":"a-3","customer_id":"c","product_id":"p","in_cmms":"yes"}',
            '{"account_id":"a-4","customer_id":"c","product_id":"p","in_cmms":true}',
            '{"account_id":"a-5","customer_id":"c","product_id":"p","password":"has space 1"}',
            '{"account_id":"a b","customer_id":"c","product_id":"p"}',
            '["a-7","c","p"]',
            '{"account_id":"a-8","customer_id":"c","product_id":"' + "p" * 65 + '"}',
            '{"account_id":"a-9","customer_id":"c\\u0000","product_id":"p"}',
        ]
    )
    rows, rejected = read_rows(body.encode(), NDJSON)
    assert [r.account_id for r in rows] == ["a-1"] and rows[0].in_cmms is False
    reasons = {r.line: r.reason for r in rejected}
    assert reasons == {
        2: "imei: an IMEI is 15 digits",
        3: "in_cmms: true or false",
        4: IN_CMMS_NEEDS_PASSWORD,
        5: "password: a SIP password is 8 to 64 printable ASCII characters, no spaces",
        6: "account_id: 1 to 64 letters, digits and . _ : @ -, starting with a letter or digit",
        7: "a row is a JSON object",
        8: "product_id: a string of at most 64 characters, no NUL",
        9: "customer_id: a string of at most 64 characters, no NUL",
    }


def test_a_file_unreadable_as_a_whole_is_refused() -> None:
    for body, media_type in ((b"\xff\xfe\x00", NDJSON), (b"\n \n", NDJSON), (b"", CSV), (b'{"a":"\x00"}', NDJSON)):
        with pytest.raises(Invalid):
            read_rows(body, media_type)


def test_the_import_id_is_the_files_keyed_hash() -> None:
    key, other = SecretStr("k" * 32), SecretStr("o" * 32)
    body = b'{"account_id":"a","customer_id":"c","product_id":"p","password":"secret-pass"}\n'
    assert import_id_of(key, body, NDJSON) == import_id_of(key, body, NDJSON)
    assert import_id_of(key, body, NDJSON) != import_id_of(key, body + b"\n", NDJSON)
    assert import_id_of(key, body, NDJSON) != import_id_of(key, body, CSV)
    assert import_id_of(key, body, NDJSON) != import_id_of(other, body, NDJSON)  # says nothing without the key
