"""HTTP beside the WebSockets: Front 2's realtime endpoints, the portfolio API, pages."""
