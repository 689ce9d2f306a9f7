"""The firm's directory: firms, companies, users (practitioners and clients) and favorites."""
