"""Code shared by every handler: AWS clients, HTTP responses, settings, WebSocket delivery."""

import warnings

# Powertools warns on every invocation that records no metric (a page view, a $connect): in
# CloudWatch that is a line of noise per request, and an empty metric set is not an error here.
warnings.filterwarnings("ignore", message="No application metrics to publish")
