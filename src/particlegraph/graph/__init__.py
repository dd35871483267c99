"""Graph building: pure-torch kNN with linear memory."""
