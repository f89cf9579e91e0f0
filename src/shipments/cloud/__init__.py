"""Cloud control: deploy to EMR / EMR Serverless / Glue and register tables in the Glue Data
Catalog, with boto3. No Spark here: these commands only call AWS APIs."""
