"""Email, WhatsApp/SMS and webhook notifications about tickets, with a delivery log."""
