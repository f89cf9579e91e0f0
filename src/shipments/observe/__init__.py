"""Operations: run metrics (``pipeline_metrics``, Pushgateway, CloudWatch), alerts, SLOs and
the HTML report."""
