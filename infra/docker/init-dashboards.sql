-- The dashboards read model lives in its own database beside the write model's.
CREATE DATABASE prism_dashboards OWNER prism;
