"""The PBX side: the portal API client, the XSI event parser, the subscriptions we hold."""
