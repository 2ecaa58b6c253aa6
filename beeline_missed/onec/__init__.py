"""1C:Альфа-Авто over its standard OData interface: client, sync, bookings, the card's facts."""
