"""Custom fields: defined once, enabled per customer class, valued per customer."""

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from billing.models import CustomerClass, CustomFieldDefinition


async def definitions(session: AsyncSession, names: list[str]) -> dict[str, CustomFieldDefinition]:
    rows = await session.exec(select(CustomFieldDefinition).where(col(CustomFieldDefinition.name).in_(names)))
    return {row.name: row for row in rows}


async def value_errors(
    session: AsyncSession, customer_class: CustomerClass, values: dict[str, str]
) -> list[dict[str, str]]:
    """Why `values` cannot be set on a customer of `customer_class` (empty when they can)."""
    errors: list[dict[str, str]] = []
    known = await definitions(session, list(values))
    for name, value in values.items():
        field = f"custom_fields.{name}"
        if name not in customer_class.custom_fields:
            message = f"custom field {name!r} is not enabled on customer class {customer_class.customer_class_id!r}"
            errors.append({"field": field, "message": message, "type": "custom_field_not_enabled"})
            continue
        definition = known.get(name)
        if definition is not None and definition.allowed_values and value not in definition.allowed_values:
            allowed = ", ".join(definition.allowed_values)
            errors.append({"field": field, "message": f"must be one of: {allowed}", "type": "custom_field_value"})
    return errors
