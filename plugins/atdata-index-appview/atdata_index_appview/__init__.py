"""atdata-index-appview: a firehose-fed index of science.alt.dataset records."""
